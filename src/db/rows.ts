import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { FormattedReading } from '../format/reading.ts';
import { readingsById } from './readings-by-id.ts';

/** SQL of newestRows: ids only, an index-only scan of slu_reading_slu_t_idx (exported for the plan test). */
export const ROWS_SQL = `select r.id::text from slu_reading r where r.slu_id = $1 order by r.t desc, r.id desc limit $2`;

/** The newest `cnt` readings of one SLU, newest first (by t, then id). */
export async function newestRows(db: pg.Pool, cache: ReadingCache, sluId: number, cnt: number): Promise<FormattedReading[]> {
  const res = await db.query<[string]>({ name: 'sluice_rows', rowMode: 'array', text: ROWS_SQL, values: [sluId, cnt] });
  return readingsById(db, cache, res.rows.map((r) => r[0]));
}
