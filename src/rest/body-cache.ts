import type { FreshnessMark } from '../hub/freshness.ts';

/**
 * Serialised response bodies, reused while the database says they are still right: an entry is the exact list
 * of version keys (`id,xid`) a query returned plus the body built from it; a request first runs the (cheap,
 * index-only) keys query and gets the stored body only when the keys are identical. A key names one version of
 * one row forever (sql/006), so identical keys mean an identical body, whatever UPDATE, DELETE or TRUNCATE ...
 * RESTART IDENTITY did in between. The one path that skips the keys query (peek) relies on the entry's
 * FreshnessMark, which any such change invalidates (see Freshness). Saves building, encoding and garbage-collecting ~30 KB per /rows?cnt=100 (the gateway's
 * largest costs after TLS itself). Bounded by bytes; least recently used entries go first.
 */
export class BodyCache {
  private readonly entries = new Map<string, { ids: readonly string[]; body: Buffer; mark: FreshnessMark | undefined }>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly maxBytes: number) {}

  /**
   * The body for exactly these ids (from a query started after `mark`, which then becomes the entry's mark: the
   * body is known to be right as of it).
   */
  get(key: string, ids: ReadonlyArray<readonly [string, string?]>, mark?: FreshnessMark): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e || e.ids.length !== ids.length) return this.miss();
    for (let i = 0; i < ids.length; i++) if (e.ids[i] !== (ids[i] as readonly [string, string?])[0]) return this.miss();
    this.entries.delete(key); // most recently used goes last
    this.entries.set(key, e);
    if (mark) e.mark = mark;
    this.hits++;
    return e.body;
  }

  /** The entry without checking ids: for callers that can tell from the mark that nothing changed. */
  peek(key: string): { readonly body: Buffer; readonly mark: FreshnessMark | undefined } | undefined {
    return this.entries.get(key);
  }

  private miss(): undefined {
    this.misses++;
    return undefined;
  }

  set(key: string, ids: ReadonlyArray<readonly [string, string?]>, body: Buffer, mark?: FreshnessMark): void {
    if (body.length > this.maxBytes / 8) return; // one huge body must not flush everything else
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.body.length;
      this.entries.delete(key);
    }
    this.entries.set(key, { ids: ids.map((k) => k[0]), body, mark });
    this.bytes += body.length;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.body.length;
    }
  }
}
