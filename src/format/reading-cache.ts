import type { FormattedReading } from './reading.ts';

/**
 * Formatted readings by version key (`id,xid`, see KEY_COLUMN in reading.ts). A key names one committed version
 * of one row forever, so nothing invalidates an entry: an UPDATE gives the row a new xid (sql/006), TRUNCATE ...
 * RESTART IDENTITY reuses ids but never xids, and a deleted row's entry is simply never asked for again (it
 * ages out). A reading formatted once can serve every later response: the legacy float format costs ~0.5 µs a
 * value, and one /rows?cnt=100 has 900 of them. Two generations give LRU-like eviction at O(1) with no per-hit bookkeeping:
 * hits in the old generation are promoted; when the young one is full it becomes the old one.
 */
export class ReadingCache {
  private young = new Map<string, FormattedReading>();
  private old = new Map<string, FormattedReading>();
  hits = 0;
  misses = 0;

  /** @param capacity most readings kept (about 300 bytes each); 0 disables the cache. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new TypeError(`ReadingCache capacity must be a non-negative integer, got ${capacity}`);
  }

  /** Whether `id` is cached, without counting a hit or promoting it. */
  peek(id: string): FormattedReading | undefined {
    return this.young.get(id) ?? this.old.get(id);
  }

  get(id: string): FormattedReading | undefined {
    let f = this.young.get(id);
    if (f) {
      this.hits++;
      return f;
    }
    f = this.old.get(id);
    if (f) {
      this.hits++;
      this.set(id, f);
      return f;
    }
    this.misses++;
    return undefined;
  }

  set(id: string, f: FormattedReading): void {
    if (this.capacity === 0) return;
    if (this.young.size >= Math.ceil(this.capacity / 2)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(id, f);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}
