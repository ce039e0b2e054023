import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../src/db/migrate.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

async function schemaFingerprint(pool: pg.Pool): Promise<string> {
  const r = await pool.query(`
    select string_agg(format('%s.%s %s %s', table_name, column_name, data_type, coalesce(column_default, '')), E'\n' order by table_name, column_name) as cols,
           (select string_agg(indexdef, E'\n' order by indexname) from pg_indexes where schemaname = 'public') as idx,
           (select string_agg(tgname, ',' order by tgname) from pg_trigger where not tgisinternal) as trg
    from information_schema.columns where table_schema = 'public'`);
  return JSON.stringify(r.rows[0]);
}

/** The covering index of sql/006 on any partition (its own name on the legacy partition, PostgreSQL's on the others). */
const COVERING = /Index Only Scan using slu_reading_(\w*slu_t_v_idx|\w+_slu_id_t_id_xid_\w*idx) on slu_reading_/;

describe('migrations', () => {
  it('are recorded, and applying them again (even concurrently) changes nothing', async () => {
    const all = await loadMigrations();
    const recorded = await db.pool.query<{ name: string }>('select name from sluice_migration order by id');
    expect(recorded.rows.map((r) => r.name)).toEqual(all.map((m) => m.name));
    const before = await schemaFingerprint(db.pool);
    await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }]);
    const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: db.url, max: 2 }));
    try {
      const results = await Promise.all(pools.map((p) => migrate(p)));
      expect(results).toEqual([[], [], []]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    expect(await schemaFingerprint(db.pool)).toBe(before);
    expect((await db.pool.query('select count(*)::int as n from slu_reading')).rows[0].n).toBe(1);
  });

  it('take over an existing legacy table: old rows keep their data and get keys, plain inserts keep working', async () => {
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query('create schema legacy');
      await admin.query(`set search_path = legacy`);
      // The legacy shape: no key, no default for t.
      await admin.query(`create table slu_reading (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real,
                           a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer)`);
      await admin.query(`insert into slu_reading values (7, '2023-01-27 17:00:06.461941', 0, 0, 0, 0.074767, 0.09063, 0, 0, 0, 0, 0, 225, 0)`);
      const pool = new pg.Pool({ connectionString: db.url, max: 1, options: '-c search_path=legacy' });
      try {
        const applied = await migrate(pool);
        expect(applied.length).toBeGreaterThan(0);
        await pool.query(`insert into slu_reading (slu_id, p1, v1) values (7, 0.5, 230)`); // t omitted: defaults to UTC now
        // Positional inserts in the legacy column order still work.
        await pool.query(`insert into slu_reading values (7, '2023-01-27 17:00:07', 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)`);
        const rows = await pool.query('select slu_id, id, xid::text, t, v2 from slu_reading order by id');
        expect(rows.rows).toHaveLength(3);
        expect(rows.rows[0]).toMatchObject({ slu_id: 7, v2: 225 });
        expect(rows.rows.every((r) => r.id !== null && r.xid !== null && r.t !== null)).toBe(true);
      } finally {
        await pool.end();
      }
    } finally {
      await admin.end();
    }
  });

  it('give every query an index, never a scan of the whole table', async () => {
    // 200 SLUs x 1000 readings, a minute apart: enough that the planner's choice reflects a real table.
    await db.pool.query(`insert into slu_reading (slu_id, t, v1)
      select s, timestamp '2024-01-01' + make_interval(mins => n), n from generate_series(1, 200) s, generate_series(1, 1000) n`);
    await db.pool.query('vacuum analyze slu_reading'); // sets the visibility map, as autovacuum does
    const { LATEST_SQL } = await import('../../src/db/latest.ts');
    const { ROWS_QUERY } = await import('../../src/db/rows.ts');
    const { RANGE_QUERY, RANGE_PAGE_QUERY } = await import('../../src/db/range.ts');
    const c = await db.pool.connect();
    try {
      await c.query('set enable_seqscan = off'); // make "no usable index" visible as a Seq Scan anyway
      const plans: string[] = [];
      const explain = async (sql: string, values: unknown[] = []) =>
        plans.push((await c.query(`explain ${sql}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n'));
      // The exact SQL the gateway runs.
      // The exact SQL the gateway runs: both forms (keys, keys + values) of each range query read only the index.
      for (const q of [ROWS_QUERY, RANGE_QUERY, RANGE_PAGE_QUERY]) {
        const values = q === ROWS_QUERY ? [3, 100] : [3, 1704067200, 1704070800, 10_001, '2024-01-01 00:30:00.000000', '1000'];
        const n = q === RANGE_QUERY ? 4 : values.length;
        for (const sql of [q.keysSql, q.fullSql]) {
          const plan = (await c.query(`explain ${sql}`, values.slice(0, n))).rows.map((r) => r['QUERY PLAN']).join('\n');
          expect(plan).toMatch(COVERING);
          plans.push(plan);
        }
      }
      await explain(LATEST_SQL);
      expect(plans.at(-1)).toMatch(COVERING);
      for (const p of plans) {
        expect(p).not.toMatch(/Seq Scan|(^|->\s+)Sort\s+\(/m);
        expect(p).toMatch(COVERING);
      }
    } finally {
      c.release();
    }
  });
});
