import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { FormattedReading } from '../format/reading.ts';
import { rangeQuery, readThroughCache } from './read-through.ts';

/** newestRows' query: the newest $2 readings of SLU $1 (exported for the plan test). */
export const ROWS_QUERY = rangeQuery('sluice_rows', `from slu_reading r where r.slu_id = $1 order by r.t desc, r.id desc limit $2`);

/** The newest `cnt` readings of one SLU, newest first (by t, then id). */
export async function newestRows(db: pg.Pool, cache: ReadingCache, sluId: number, cnt: number): Promise<FormattedReading[]> {
  return (await readThroughCache(db, cache, ROWS_QUERY, [sluId, cnt])).map((r) => r.formatted);
}
