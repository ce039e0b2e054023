import type pg from 'pg';
import type { Logger } from 'pino';
import { visibleIn, type Snapshot } from '../stream/snapshot.ts';

interface PartitionState {
  /** Lower bound as PostgreSQL prints it; null = MINVALUE (the legacy partition). */
  readonly lo: string | null;
  /** The transaction that turned it cold (sql/010 sluice_mark_cold), or null while it is hot. */
  readonly coldXid: number | null;
}

/**
 * Which partitions a read from snapshot S must read directly ("hot"), as one bound on t.
 *
 * Why it is right: a row written with t below the bound lies in a partition P that is cold as seen from S (its
 * trigger's transaction C is visible in S). Every transaction that wrote into P before the trigger existed held a
 * lock that CREATE TRIGGER waited for, so it ended before C committed, hence before S was taken: it is visible
 * in S and not "new since S". Every transaction that wrote into P after C fired the trigger and is in
 * sluice_reading_late, which the read also follows. Rows in the default partition are always noted.
 *
 * Why a stale map is harmless: it can only say "hot" where the truth is "cold" (a partition it does not list is
 * either newer than every listed one, so above the bound anyway, or made for the past by addPartitionsFrom,
 * which makes it cold in the same transaction; one dropped since was cold), and reading a cold
 * partition directly as well is merely slower. The two parts of the read split on the same bound, so nothing is
 * read twice. Until the first load, the bound is -infinity: every partition is read directly.
 */
export class PartitionMap {
  private parts: PartitionState[] | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pool: pg.Pool, private readonly log?: Logger) {}

  /** The bound for a read of rows not visible in `since` (a timestamp literal). */
  readonly hotFrom = (since: Snapshot): string => {
    if (!this.parts) return '-infinity';
    let bound: string | null | undefined;
    for (const p of this.parts) {
      if (p.coldXid !== null && visibleIn(p.coldXid, since)) continue;
      if (p.lo === null) return '-infinity';
      if (bound === undefined || (bound !== null && p.lo < bound)) bound = p.lo;
    }
    return bound ?? 'infinity';
  };

  async refresh(): Promise<void> {
    // lo as ISO text (the pool prints timestamps with DateStyle ISO, zero-padded), so strings compare as times for
    // every year 1000-9999; a partition outside that range compares wrongly only toward "hot" (read directly).
    const r = await this.pool.query<{ lo: string | null; cold: string | null }>(
      `select to_char(lo, 'YYYY-MM-DD HH24:MI:SS.US') as lo, cold_xid::text as cold from sluice_partition`,
    );
    this.parts = r.rows.map((row) => ({ lo: row.lo, coldXid: row.cold === null ? null : Number(row.cold) }));
  }

  /** Refreshes now and then every `everyMs` (a failure keeps the previous map, which stays safe). */
  start(everyMs = 30_000): this {
    const tick = () => this.refresh().catch((err: Error) => this.log?.debug({ err: err.message }, 'could not read the partition map'));
    void tick();
    this.timer = setInterval(tick, everyMs);
    this.timer.unref();
    return this;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
