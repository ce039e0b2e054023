import type { Logger } from 'pino';
import type { Access } from '../access/grants.ts';
import type { LatestRow } from '../db/latest.ts';
import { tSortKey, type FormattedReading } from '../format/reading.ts';
import type { StreamReading } from '../stream/feed.ts';

interface Entry {
  /** tSortKey of t: compares as time, not as text. */
  readonly at: string;
  readonly id: number;
  readonly f: FormattedReading;
}

/**
 * The newest reading of every SLU, kept current from the feed, so /latest costs one small catch-up read instead
 * of a scan over every SLU (a loose index scan took 110-340 ms at 10,000 SLUs in bench:rest). "Newest" is by t
 * (as time), then id, exactly as the SQL orders it.
 *
 * What invalidates it: inserts are applied as the feed reads them (onBatch). Anything else (UPDATE, DELETE,
 * TRUNCATE, with or without RESTART IDENTITY) may have removed or changed an SLU's newest reading: the feed sees
 * the change counter move in the very read that sees the change (sql/006) and calls onChange, which drops the
 * map and rebuilds it from the table. Until the rebuild is done, `json` waits for it: no answer comes from the
 * old map. A LISTEN outage needs nothing here: the counter is read by every feed read, notified or not.
 */
export class LatestStore {
  private bySlu = new Map<number, Entry>();
  private body: string | undefined;
  private valid = false;
  /** Batches that arrive while a rebuild's scan runs: applied on top of the scan's result. */
  private pending: StreamReading[][] | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private lastError: Error | undefined;
  /** Rebuilds done (tests and logs). */
  rebuilds = 0;

  constructor(
    private readonly load: () => Promise<LatestRow[]>,
    private readonly log: Logger,
  ) {}

  /** Fills the store for the first time; rejects when the table cannot be read. */
  async start(): Promise<void> {
    this.kick();
    await this.ready();
  }

  /** Readings the feed read: applied now, or kept for the rebuild in progress. */
  onBatch(readings: readonly StreamReading[]): void {
    if (readings.length === 0) return;
    if (this.pending) this.pending.push(readings as StreamReading[]);
    if (this.valid) this.offerAll(this.bySlu, readings);
  }

  /** Readings changed other than by insert (or may have): forget everything and rebuild from the table. */
  onChange(why: string): void {
    this.valid = false;
    this.body = undefined;
    this.bySlu = new Map();
    this.log.info({ why }, 'readings changed other than by insert: rebuilding the latest-reading store');
    this.kick();
  }

  /** The /latest array for `access`, ordered by slu_id; waits for a rebuild in progress. */
  async json(access: Access): Promise<string> {
    await this.ready();
    if (access.all) return (this.body ??= this.render([...this.bySlu.keys()]));
    const slus = access.slus;
    const ids = slus.size < this.bySlu.size ? [...slus].filter((id) => this.bySlu.has(id)) : [...this.bySlu.keys()].filter((id) => slus.has(id));
    return this.render(ids);
  }

  get size(): number {
    return this.bySlu.size;
  }

  private async ready(): Promise<void> {
    while (!this.valid) {
      this.kick();
      await this.running;
      if (!this.valid && this.lastError && !this.running) throw this.lastError;
    }
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        this.pending = [];
        try {
          const next = new Map<number, Entry>();
          for (const r of await this.load()) this.offer(next, r.sluId, r.t, r.id, r.formatted);
          for (const batch of this.pending) this.offerAll(next, batch);
          this.lastError = undefined;
          if (!this.again) {
            this.bySlu = next;
            this.body = undefined;
            this.valid = true;
            this.rebuilds++;
          }
        } catch (err) {
          this.lastError = err as Error;
          this.log.warn({ err: (err as Error).message }, 'could not read the newest readings; /latest answers 503 until the next try');
          this.again = false;
        } finally {
          this.pending = undefined;
        }
      } while (this.again);
    })().finally(() => (this.running = undefined));
  }

  private offerAll(into: Map<number, Entry>, readings: readonly StreamReading[]): void {
    for (const r of readings) this.offer(into, r.sluId, r.t, r.id, r.formatted);
  }

  /**
   * Keeps the newer of the two by (t, id). An equal (t, id) is the same reading in a later version (an UPDATE of
   * its values): the later offer wins, since batches come in commit order and a rebuild that raced an UPDATE is
   * redone (onChange during it sets `again`).
   */
  private offer(into: Map<number, Entry>, sluId: number, t: string, id: number, f: FormattedReading): void {
    const at = tSortKey(t);
    const cur = into.get(sluId);
    if (cur && (cur.at > at || (cur.at === at && cur.id > id))) return;
    into.set(sluId, { at, id, f });
    if (into === this.bySlu) this.body = undefined;
  }

  private render(ids: number[]): string {
    ids.sort((a, b) => a - b);
    let s = '[';
    for (let i = 0; i < ids.length; i++) {
      const f = (this.bySlu.get(ids[i] as number) as Entry).f;
      s += (i === 0 ? '' : ', ') + f.head + ', "slu_id": ' + f.sluId + f.tail;
    }
    return s + ']';
  }
}
