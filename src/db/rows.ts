import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { fetchKeys, rangeQuery, readThroughCache, type KeyedReading, type KeyRows } from './read-through.ts';

/** newestRows' query: the newest $2 readings of SLU $1 (exported for the plan test). Ids only: no paging mark. */
export const ROWS_QUERY = rangeQuery('sluice_rows', `from slu_reading r where r.slu_id = $1 order by r.t desc, r.id desc limit $2`, { limitIndex: 1 });

/** The ids of the newest `cnt` readings of one SLU, newest first (by t, then id). */
export function newestIds(db: pg.Pool, sluId: number, cnt: number): Promise<KeyRows> {
  return fetchKeys(db, ROWS_QUERY, [sluId, cnt]);
}

/**
 * The newest `cnt` readings of one SLU, newest first, with their ids; `ids` from newestIds saves running that
 * query again (when some reading is not cached, the answer comes from a fresh full query and may be newer).
 */
export function newestRows(db: pg.Pool, cache: ReadingCache, sluId: number, cnt: number, ids?: KeyRows): Promise<KeyedReading[]> {
  return readThroughCache(db, cache, ROWS_QUERY, [sluId, cnt], ids);
}
