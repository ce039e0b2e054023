import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatPacked, PACKED_READING, packedKey, readingT, type FormattedReading } from '../format/reading.ts';

/**
 * The loose index scan behind latestPerSlu: one index descent to find each next slu_id and one to read its
 * newest reading, both index-only (every column is in slu_reading_slu_t_v_idx), so the cost grows with the
 * number of SLUs, not rows, and writers pay nothing (a maintained latest table would make concurrent writers of
 * one SLU queue on its row lock). One statement, so one snapshot: the answer is one consistent state of the table.
 */
export const LATEST_SQL = `with recursive s(sid) as (
    (select slu_id from slu_reading order by slu_id limit 1)
    union all
    select (select r.slu_id from slu_reading r where r.slu_id > s.sid order by r.slu_id limit 1)
    from s where s.sid is not null
  )
  select l.packed from s cross join lateral (
    select ${PACKED_READING} as packed from slu_reading r where r.slu_id = s.sid order by r.t desc, r.id desc limit 1
  ) l`;

/** One SLU's newest reading, as the LatestStore keeps it. */
export interface LatestRow {
  readonly sluId: number;
  readonly t: string;
  readonly id: number;
  readonly formatted: FormattedReading;
}

/** The newest reading of every SLU, ordered by slu_id. */
export async function latestPerSlu(db: pg.Pool, cache: ReadingCache): Promise<LatestRow[]> {
  const res = await db.query<[string]>({ name: 'sluice_latest', rowMode: 'array', text: LATEST_SQL });
  return res.rows.map(([packed]) => {
    const key = packedKey(packed);
    let formatted = cache.get(key);
    if (!formatted) cache.set(key, (formatted = formatPacked(packed, key).formatted));
    return { sluId: formatted.sluId, t: readingT(formatted), id: Number(key.slice(0, key.indexOf(','))), formatted };
  });
}
