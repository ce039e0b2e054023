import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { FormattedReading } from '../format/reading.ts';
import { readingsById } from './readings-by-id.ts';

/** Where the previous page of a /time query ended: the last row's t (legacy text form) and id. */
export interface PageMark {
  readonly t: string;
  readonly id: string;
}

const RANGE_WHERE = `r.slu_id = $1 and r.t >= (to_timestamp($2) at time zone 'utc') and r.t <= (to_timestamp($3) at time zone 'utc')`;
const MARK_COLUMNS = `r.id::text, to_char(r.t, 'YYYY-MM-DD HH24:MI:SS.US')`;
/** SQL of rangeRows, first and following pages: ids and t only, index-only (exported for the plan test). */
export const RANGE_SQL = `select ${MARK_COLUMNS} from slu_reading r where ${RANGE_WHERE} order by r.t desc, r.id desc limit $4`;
export const RANGE_PAGE_SQL = `select ${MARK_COLUMNS} from slu_reading r where ${RANGE_WHERE}
  and (r.t, r.id) < ($5::timestamp, $6::bigint) order by r.t desc, r.id desc limit $4`;

/**
 * Readings of one SLU with begin <= t <= end (Unix seconds, inclusive, UTC), newest first, at most `limit`,
 * starting strictly after `before` (the previous page's mark). `next` is set when more rows exist.
 */
export async function rangeRows(
  db: pg.Pool,
  cache: ReadingCache,
  q: { sluId: number; beginS: number; endS: number; limit: number; before?: PageMark },
): Promise<{ readings: FormattedReading[]; next?: PageMark }> {
  const values = [q.sluId, q.beginS, q.endS, q.limit + 1];
  const res = q.before
    ? await db.query<[string, string]>({ name: 'sluice_range_page', rowMode: 'array', text: RANGE_PAGE_SQL, values: [...values, q.before.t, q.before.id] })
    : await db.query<[string, string]>({ name: 'sluice_range', rowMode: 'array', text: RANGE_SQL, values });
  const rows = res.rows.length > q.limit ? res.rows.slice(0, q.limit) : res.rows;
  const readings = await readingsById(db, cache, rows.map((r) => r[0]));
  const last = rows.at(-1);
  return res.rows.length > q.limit && last ? { readings, next: { id: last[0], t: last[1] } } : { readings };
}
