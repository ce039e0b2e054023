// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maintainPartitions } from '../../../src/db/partitions.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: the late-note trigger of sql/010 (on the default partition and on every cold one) runs, for every row,
// an upsert of the writing transaction's single note row, and updates it whenever the row widens [lo, hi]. Rows
// written in time order (an import of old readings, a CSV export, a day of corrections) widen it on EVERY row, so a
// statement of n rows makes n versions of one row in one transaction, and each upsert walks the chain of the
// versions before it: quadratic. 32,000 rows: 5-7 s instead of ~0.1 s (PostgreSQL 15 and 18 here); an import of one day of 1,000 SLUs (5.76M
// rows, docs/operations.md "Importing old readings") would not finish, and a writer's statement_timeout fails it.
let db: TestDatabase;
const N = 32_000;
const DAY = 86_400;

beforeAll(async () => {
  db = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await db?.drop();
});

async function timed(sql: string): Promise<number> {
  const c = await db.pool.connect();
  try {
    await c.query('set statement_timeout = 0');
    const t0 = performance.now();
    await c.query(sql);
    return performance.now() - t0;
  } finally {
    c.release();
  }
}

describe('writes into noted partitions', () => {
  it('an import in time order costs about what the same rows cost in a hot partition', async () => {
    const first = (await db.pool.query<{ lo: string }>(`select to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as lo from sluice_partition`)).rows[0]?.lo as string;
    // The same N rows, one statement each, in time order: into the first (hot) partition, then into the default one
    // (a year before every partition: the documented "import lands in the default partition").
    const hot = await timed(`insert into slu_reading (slu_id, t, v1) select 1 + n % 100, timestamp '${first}' + make_interval(secs => n), n from generate_series(1, ${N}) n`);
    const dflt = await timed(`insert into slu_reading (slu_id, t, v1) select 1 + n % 100, timestamp '${first}' - interval '1 year' + make_interval(secs => n), n from generate_series(1, ${N}) n`);
    console.log(`${N} rows in time order: hot partition ${hot.toFixed(0)} ms, default partition ${dflt.toFixed(0)} ms`);
    expect(dflt).toBeLessThan(hot * 5 + 1000);
  }, 120_000);

  it('an UPDATE of a day of readings in a cold partition', async () => {
    const first = (await db.pool.query<{ lo: string }>(`select to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as lo from sluice_partition`)).rows[0]?.lo as string;
    const now = (await db.pool.query<{ n: string }>(`select to_char(timestamp '${first}' + interval '2 days', 'YYYY-MM-DD HH24:MI:SS') as n`)).rows[0]?.n as string;
    const r = await maintainPartitions(db.pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, now });
    expect(r?.cold.length).toBeGreaterThan(0); // the first partition (holding the hot rows above) is cold now
    // The same UPDATE's cost on a hot partition (the second one, filled the same way).
    await db.pool.query(`insert into slu_reading (slu_id, t, v1) select 1 + n % 100, timestamp '${first}' + interval '3 days' + make_interval(secs => n), n from generate_series(1, ${N}) n`);
    const hot0 = await timed(`update slu_reading set p1 = 0.5 where t >= timestamp '${first}' + interval '3 days' and t < timestamp '${first}' + interval '4 days'`);
    console.log(`UPDATE of ${N} rows in a hot partition: ${hot0.toFixed(0)} ms`);
    // An operator's correction of that day (e.g. a calibration factor): N rows, in the order they lie.
    const upd = await timed(`update slu_reading set p1 = 0.5 where t >= timestamp '${first}' and t < timestamp '${first}' + interval '1 day'`);
    console.log(`UPDATE of ${N} rows in a cold partition: ${upd.toFixed(0)} ms`);
    expect(upd).toBeLessThan(hot0 * 5 + 1000);
  }, 120_000);
});
