import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { legacyT, type FormattedReading } from '../format/reading.ts';
import { readingsByIdAligned } from './readings-by-id.ts';

/**
 * The loose index scan behind latestPerSlu: one index descent to find each next slu_id and one to find its
 * newest reading's id, both index-only (id is in slu_reading_slu_t_cover_idx), so the cost grows with the number of
 * SLUs, not rows, and writers pay nothing (a maintained latest table would make concurrent writers of one SLU
 * queue on its row lock).
 */
export const LATEST_SQL = `with recursive s(sid) as (
    (select slu_id from slu_reading order by slu_id limit 1)
    union all
    select (select r.slu_id from slu_reading r where r.slu_id > s.sid order by r.slu_id limit 1)
    from s where s.sid is not null
  )
  select l.id::text, l.t::text from s cross join lateral (
    select r.id, r.t from slu_reading r where r.slu_id = s.sid order by r.t desc, r.id desc limit 1
  ) l`;

/** The newest reading of every SLU, ordered by slu_id, with each one's id and t (for the LatestStore). */
export async function latestPerSlu(db: pg.Pool, cache: ReadingCache): Promise<Array<{ id: number; t: string; formatted: FormattedReading }>> {
  const res = await db.query<[string, string]>({ name: 'sluice_latest', rowMode: 'array', text: LATEST_SQL });
  const readings = await readingsByIdAligned(db, cache, res.rows.map((r) => r[0]));
  const out: Array<{ id: number; t: string; formatted: FormattedReading }> = [];
  res.rows.forEach(([id, t], i) => {
    const formatted = readings[i];
    if (formatted) out.push({ id: Number(id), t: legacyT(t), formatted });
  });
  return out;
}
