// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: promise 3, "a takeover never fails a writer's plain insert into slu_reading (...) values (...)". A legacy
// table's t is nullable (takeover.ts itself says so: "a legacy table without a default for t"), and migration 001
// only adds a default, so a legacy writer that sends its time as a bound parameter that is sometimes NULL (a unit
// without a clock fix) keeps working through migrations 001-009, and during the takeover its rows are even set aside
// in sluice_reading_untimed. Right after the switch the partitioned slu_reading has t NOT NULL, and the same insert
// fails with 23502 for good.
let base: TestDatabase;
let pool: pg.Pool | undefined;
let name: string;

beforeAll(async () => {
  base = await createTestDatabase();
  name = `sluice_review_nullt_${process.pid}`;
  await base.pool.query(`create database ${name} template template0`);
}, 60_000);
afterAll(async () => {
  await pool?.end();
  await base?.pool.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
  await base?.drop();
});

// Decision (docs/operations.md, "Taking over a large legacy table"): after the takeover t is NOT NULL, as on a fresh
// install. A range-partitioned table can only put a NULL key into its default partition, and no trigger can turn it
// into "now" there (the row would belong to another partition). So a writer that sends t = NULL gets a clear
// not-null error naming t (omitting t gives the database's now); the rows of that kind already in the table are
// kept in sluice_reading_untimed, and this test pins both.
describe('a legacy writer that sends t = NULL', () => {
  it('gets a clear error naming t after the takeover; earlier such rows are kept aside', async () => {
    const url = base.url.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    await pool.query(`create table slu_reading (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real,
                        a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer)`);
    const writerSql = `insert into slu_reading (slu_id, t, p1, v1) values ($1, $2, $3, $4)`;
    await pool.query(writerSql, [5, '2025-01-01 00:00:00', 0.5, 1]);
    await pool.query(writerSql, [5, null, 0.5, 2]); // accepted by the legacy table
    const applied = await migrate(pool);
    expect(applied).toContain('takeover: slu_reading partitioned');
    expect((await pool.query(`select v1 from sluice_reading_untimed`)).rows).toEqual([{ v1: 2 }]); // kept aside, as documented
    // The same writer, the same statement, after the takeover.
    let error: { message: string; code?: string; column?: string } | undefined;
    await pool.query(writerSql, [5, null, 0.5, 3]).catch((e: Error) => (error = e));
    expect(error?.code).toBe('23502');
    expect(error?.column).toBe('t');
    // Omitting t works: the default is the database's now (UTC).
    await pool.query(`insert into slu_reading (slu_id, p1, v1) values (5, 0.5, 4)`);
    expect((await pool.query(`select count(*)::int as n from slu_reading where v1 = 4 and t is not null`)).rows[0].n).toBe(1);
  }, 60_000);
});
