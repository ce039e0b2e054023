import type { StreamReading } from '../stream/feed.ts';

/** A point in the feed's history: how many batches it had published, and the invalidation epoch. */
export interface FreshnessMark {
  readonly seq: number;
  readonly epoch: number;
}

/**
 * Tells whether state derived from the table at some moment (a serialised /rows body) is still right now. Every
 * insert reaches the feed, which records per SLU the last batch that carried one; every other change (UPDATE,
 * DELETE, TRUNCATE, with or without RESTART IDENTITY) moves sql/006's counter, which the feed reads in the same
 * snapshot as its rows and reports before that batch: it starts a new epoch that invalidates everything. Since
 * the counter is read by every feed read, a LISTEN outage cannot hide a change (it only delays the read).
 */
export class Freshness {
  private seq = 0;
  private epoch = 0;
  private readonly lastSeq = new Map<number, number>();

  onBatch(readings: readonly StreamReading[]): void {
    if (readings.length === 0) return;
    this.seq++;
    for (const r of readings) this.lastSeq.set(r.sluId, this.seq);
  }

  invalidate(): void {
    this.epoch++;
    this.lastSeq.clear();
  }

  /** Take this *before* reading the table: everything the feed had published by then is in what you read. */
  mark(): FreshnessMark {
    return { seq: this.seq, epoch: this.epoch };
  }

  /** True when no insert into `sluId` and no other change has been seen since `m`. */
  unchangedSince(sluId: number, m: FreshnessMark): boolean {
    return m.epoch === this.epoch && (this.lastSeq.get(sluId) ?? 0) <= m.seq;
  }
}
