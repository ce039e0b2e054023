import type pg from 'pg';
import { READING_COLUMNS, type ReadingRow } from '../format/reading.ts';

/** Where the previous page of a /time query ended: the last row's t (legacy text form) and id. */
export interface PageMark {
  readonly t: string;
  readonly id: string;
}

/** A ReadingRow followed by its id (text), so the last row of a page can become the next page's mark. */
export type RangeRow = [...ReadingRow, string];

/**
 * Readings of one SLU with begin <= t <= end (Unix seconds, inclusive, UTC), newest first, at most `limit`,
 * starting strictly after `before` (the mark of the previous page). Callers ask for one row more than they
 * send to learn whether the range was truncated.
 */
export async function rangeRows(
  db: pg.Pool | pg.PoolClient,
  sluId: number,
  beginS: number,
  endS: number,
  limit: number,
  before?: PageMark,
): Promise<RangeRow[]> {
  const res = before
    ? await db.query<RangeRow>({
        name: 'sluice_range_page',
        rowMode: 'array',
        text: `select ${READING_COLUMNS}, id::text from slu_reading
               where slu_id = $1 and t >= (to_timestamp($2) at time zone 'utc') and t <= (to_timestamp($3) at time zone 'utc')
                 and (t, id) < ($5::timestamp, $6::bigint)
               order by t desc, id desc limit $4`,
        values: [sluId, beginS, endS, limit, before.t, before.id],
      })
    : await db.query<RangeRow>({
        name: 'sluice_range',
        rowMode: 'array',
        text: `select ${READING_COLUMNS}, id::text from slu_reading
               where slu_id = $1 and t >= (to_timestamp($2) at time zone 'utc') and t <= (to_timestamp($3) at time zone 'utc')
               order by t desc, id desc limit $4`,
        values: [sluId, beginS, endS, limit],
      });
  return res.rows;
}
