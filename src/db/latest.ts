import type pg from 'pg';
import { READING_COLUMNS, type ReadingRow } from '../format/reading.ts';

/**
 * The newest reading of every SLU, by slu_id. A loose index scan over slu_reading_slu_t_idx: one index descent
 * to find each next slu_id and one to fetch its newest row, so the cost grows with the number of SLUs, not rows,
 * and writers pay nothing extra (a maintained latest table would make concurrent writers of one SLU queue on
 * its row lock).
 */
export async function latestPerSlu(db: pg.Pool | pg.PoolClient): Promise<ReadingRow[]> {
  const res = await db.query<ReadingRow>({
    name: 'sluice_latest',
    rowMode: 'array',
    text: `with recursive s(sid) as (
             (select slu_id from slu_reading order by slu_id limit 1)
             union all
             select (select r.slu_id from slu_reading r where r.slu_id > s.sid order by r.slu_id limit 1)
             from s where s.sid is not null
           )
           select ${READING_COLUMNS}
           from s cross join lateral (
             select * from slu_reading r where r.slu_id = s.sid order by r.t desc, r.id desc limit 1
           ) l`,
  });
  return res.rows;
}
