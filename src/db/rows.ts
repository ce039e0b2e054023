import type pg from 'pg';
import { READING_COLUMNS, type ReadingRow } from '../format/reading.ts';

/** The newest `cnt` readings of one SLU, newest first (by t, then id). */
export async function newestRows(db: pg.Pool | pg.PoolClient, sluId: number, cnt: number): Promise<ReadingRow[]> {
  const res = await db.query<ReadingRow>({
    name: 'sluice_rows',
    rowMode: 'array',
    text: `select ${READING_COLUMNS} from slu_reading where slu_id = $1 order by t desc, id desc limit $2`,
    values: [sluId, cnt],
  });
  return res.rows;
}
