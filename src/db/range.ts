import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { readingT, type FormattedReading } from '../format/reading.ts';
import { rangeQuery, readThroughCache } from './read-through.ts';

/** Where the previous page of a /time query ended: the last row's t (legacy text form) and id. */
export interface PageMark {
  readonly t: string;
  readonly id: string;
}

const RANGE_WHERE = `r.slu_id = $1 and r.t >= (to_timestamp($2) at time zone 'utc') and r.t <= (to_timestamp($3) at time zone 'utc')`;
/** rangeRows' queries, first and following pages (exported for the plan test). */
export const RANGE_QUERY = rangeQuery('sluice_range', `from slu_reading r where ${RANGE_WHERE} order by r.t desc, r.id desc limit $4`, { limitIndex: 3 });
export const RANGE_PAGE_QUERY = rangeQuery(
  'sluice_range_page',
  `from slu_reading r where ${RANGE_WHERE} and (r.t, r.id) < ($5::timestamp, $6::bigint) order by r.t desc, r.id desc limit $4`,
  { limitIndex: 3 },
);

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
  const rows = q.before
    ? await readThroughCache(db, cache, RANGE_PAGE_QUERY, [...values, q.before.t, q.before.id])
    : await readThroughCache(db, cache, RANGE_QUERY, values);
  const more = rows.length > q.limit;
  if (more) rows.length = q.limit;
  const readings = rows.map((r) => r.formatted);
  const last = rows.at(-1);
  return more && last ? { readings, next: { id: last.id, t: readingT(last.formatted) } } : { readings };
}
