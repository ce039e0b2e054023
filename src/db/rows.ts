import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { fetchKeys, rangeQuery, readThroughCache, type KeyedReading, type KeyRows } from './read-through.ts';

/** newestRows' query: the newest $2 readings of SLU $1 (exported for the plan test). Ids only: no paging mark. */
export const ROWS_QUERY = rangeQuery('sluice_rows', `from slu_reading r where r.slu_id = $1 order by r.t desc, r.id desc limit $2`, { limitIndex: 1 });

/**
 * The same within the recent partitions only (t >= $3): planned with the bound as a constant, it names the
 * partitions from there on instead of every partition of the table (at 400 partitions ~15 ms of planning per
 * call). An SLU that reports has its newest readings there; when the window holds fewer than $2, the whole table
 * is asked (ROWS_QUERY).
 */
export const ROWS_RECENT_QUERY = rangeQuery(
  'sluice_rows_recent',
  `from slu_reading r where r.slu_id = $1 and r.t >= $3::timestamp order by r.t desc, r.id desc limit $2`,
  { limitIndex: 1 },
);

/** Which query gave the keys, so the values are read with the same one. */
export interface NewestKeys {
  readonly keys: KeyRows;
  readonly recentFrom?: string;
}

/**
 * The version keys of the newest `cnt` readings of one SLU, newest first (by t, then id): from the readings at or
 * after `recentFrom` (a UTC timestamp) when they are `cnt` or more, else from the whole table.
 */
export async function newestIds(db: pg.Pool, sluId: number, cnt: number, recentFrom?: string): Promise<NewestKeys> {
  if (recentFrom !== undefined) {
    const keys = await fetchKeys(db, ROWS_RECENT_QUERY, [sluId, cnt, recentFrom]);
    if (keys.length >= cnt) return { keys, recentFrom };
  }
  return { keys: await fetchKeys(db, ROWS_QUERY, [sluId, cnt]) };
}

/**
 * The newest `cnt` readings of one SLU, newest first, with their ids; `ids` from newestIds saves running that
 * query again (when some reading is not cached, the answer comes from a fresh full query and may be newer).
 */
export async function newestRows(db: pg.Pool, cache: ReadingCache, sluId: number, cnt: number, ids?: NewestKeys): Promise<KeyedReading[]> {
  if (ids?.recentFrom !== undefined) {
    const rows = await readThroughCache(db, cache, ROWS_RECENT_QUERY, [sluId, cnt, ids.recentFrom], ids.keys);
    if (rows.length >= cnt) return rows;
    // A DELETE between the two reads left the window short: the whole table answers.
  }
  return readThroughCache(db, cache, ROWS_QUERY, [sluId, cnt], ids?.recentFrom === undefined ? ids?.keys : undefined);
}
