/**
 * Serialised response bodies, reused while the database says they are still right: an entry is the exact id
 * list a query returned plus the body built from it; a request first runs the (cheap, index-only) ids query and
 * gets the stored body only when the ids are identical. Readings are immutable, so identical ids mean an
 * identical body. Saves building, encoding and garbage-collecting ~30 KB per /rows?cnt=100 (the gateway's
 * largest costs after TLS itself). Bounded by bytes; least recently used entries go first.
 */
export class BodyCache {
  private readonly entries = new Map<string, { ids: readonly string[]; body: Buffer }>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string, ids: ReadonlyArray<readonly [string, string?]>): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e || e.ids.length !== ids.length) return this.miss();
    for (let i = 0; i < ids.length; i++) if (e.ids[i] !== (ids[i] as readonly [string, string?])[0]) return this.miss();
    this.entries.delete(key); // most recently used goes last
    this.entries.set(key, e);
    this.hits++;
    return e.body;
  }

  private miss(): undefined {
    this.misses++;
    return undefined;
  }

  set(key: string, ids: ReadonlyArray<readonly [string, string?]>, body: Buffer): void {
    if (body.length > this.maxBytes / 8) return; // one huge body must not flush everything else
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.body.length;
      this.entries.delete(key);
    }
    this.entries.set(key, { ids: ids.map((k) => k[0]), body });
    this.bytes += body.length;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.body.length;
    }
  }
}
