import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../src/db/migrate.ts';
import { currentSnapshot } from '../../src/db/since.ts';
import type { Gateway } from '../../src/gateway.ts';
import { encodeCursor } from '../../src/stream/cursor.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Taking over a large existing table (src/db/takeover.ts) while a field writer keeps inserting: no insert fails,
// none waits long (the takeover takes seconds; a rewrite under lock would have stalled the writer for all of it),
// every row is kept with its values, and the gateway then serves old and new rows alike. Two starting points:
// a legacy table that has never seen sluice, and a sluice table from before partitioning (migrations 001-009).
// A million rows: migration 001's old way (columns added with a volatile default, a rewrite, then the key and the
// index builds, under an exclusive lock) stalls the writer ~1.5 s here; the online takeover, milliseconds.
const ROWS = 1_000_000;
const STALL_BOUND_MS = 600;

let base: TestDatabase;
let pki: TestPki;
const extra: string[] = [];
const gateways: Gateway[] = [];
const streams: StreamClient[] = [];

beforeAll(async () => {
  [base, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
});
afterAll(async () => {
  await Promise.all(streams.map((s) => s.close()));
  await Promise.all(gateways.map((g) => g.close()));
  for (const name of extra) await base.pool.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
  await base?.drop();
  await pki?.close();
});

/** An empty database of its own (no migrations), on the test server. */
async function emptyDatabase(): Promise<{ url: string; pool: pg.Pool }> {
  const name = `sluice_takeover_${process.pid}_${extra.length}`;
  await base.pool.query(`create database ${name} template template0`);
  extra.push(name);
  const url = base.url.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  return { url, pool };
}

/** A field writer: one plain single-row INSERT after another, as fast as it can; records each one's latency. */
function startWriter(url: string, sluId: number) {
  const client = new pg.Client({ connectionString: url });
  let running = true;
  let written = 0;
  let longestMs = 0;
  const errors: string[] = [];
  const done = (async () => {
    await client.connect();
    while (running) {
      const t0 = performance.now();
      try {
        await client.query(`insert into slu_reading (slu_id, t, p1, v1) values ($1, now() at time zone 'utc', 0.5, $2)`, [sluId, written + 1]);
        written++;
      } catch (err) {
        errors.push((err as Error).message);
        if (errors.length > 20) break; // a broken connection: stop, the test fails on errors
      }
      longestMs = Math.max(longestMs, performance.now() - t0);
    }
    await client.end();
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return { written, longestMs, errors };
    },
  };
}

async function takeOverWithWriter(url: string, pool: pg.Pool, writerSlu: number) {
  const writer = startWriter(url, writerSlu);
  await new Promise((r) => setTimeout(r, 300)); // the writer is in full swing before the takeover starts
  const t0 = performance.now();
  const applied = await migrate(pool, undefined, { batchBlocks: 500 });
  const tookMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 200));
  const w = await writer.stop();
  console.log(`takeover of ${ROWS.toLocaleString()} rows: ${(tookMs / 1000).toFixed(1)} s; the writer's longest insert ${w.longestMs.toFixed(0)} ms (${w.written} inserts)`);
  return { applied, tookMs, ...w };
}

const partitionsOf = async (pool: pg.Pool) =>
  (await pool.query<{ p: string }>(`select inhrelid::regclass::text as p from pg_inherits where inhparent = 'slu_reading'::regclass order by 1`)).rows.map((r) => r.p);

describe('taking over a large table without stopping its writers', () => {
  it('a legacy table that has never seen sluice: keys added online, attached as the first partition; the writer never waits long', async () => {
    const { url, pool } = await emptyDatabase();
    try {
      await pool.query(`create table slu_reading (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real,
                          a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer)`);
      await pool.query(`insert into slu_reading (slu_id, t, p1, k1, v1, v2)
        select 1 + n % 200, timestamp '2025-01-01' + make_interval(secs => n * 15), 0.9, n * 0.5, n, 230 from generate_series(1, ${ROWS}) n`);
      await pool.query(`insert into slu_reading (slu_id, v1) values (5, -1), (5, -2)`); // legacy rows without a time
      await pool.query('vacuum analyze slu_reading');
      const r = await takeOverWithWriter(url, pool, 9001);
      expect(r.errors).toEqual([]);
      expect(r.written).toBeGreaterThan(50);
      expect(r.applied).toContain('takeover: legacy table prepared');
      expect(r.applied).toContain('takeover: slu_reading partitioned');
      // Bounded by short locks, not by the size of the table.
      expect(r.longestMs).toBeLessThan(STALL_BOUND_MS);
      expect(await partitionsOf(pool)).toEqual(expect.arrayContaining(['slu_reading_legacy', 'slu_reading_default']));
      const c = await pool.query<{ n: number; ids: number; nulls: number; v: number; old1: number }>(
        `select count(*)::int as n, count(distinct id)::int as ids, count(*) filter (where id is null or xid is null)::int as nulls,
                count(*) filter (where slu_id = 9001)::int as v, count(*) filter (where slu_id <> 9001 and xid = '1')::int as old1 from slu_reading`,
      );
      expect(c.rows[0]).toEqual({ n: ROWS + r.written, ids: ROWS + r.written, nulls: 0, v: r.written, old1: ROWS });
      // Rows without a time can be in no partition: kept aside, not lost.
      expect((await pool.query(`select v1 from sluice_reading_untimed order by v1`)).rows).toEqual([{ v1: -2 }, { v1: -1 }]);
      // The old rows keep their values.
      const one = await pool.query(`select slu_id, t::text, p1, k1, v1, v2 from slu_reading where v1 = 12345 and slu_id <> 9001`);
      expect(one.rows).toEqual([{ slu_id: 1 + (12345 % 200), t: '2025-01-03 03:26:15', p1: 0.9, k1: 6172.5, v1: 12345, v2: 230 }]);
      // And it serves: /rows of an old SLU through a gateway on it.
      const { gateway } = await startTestGateway(url, pki, { REST_RATE_LIMIT: '0' });
      gateways.push(gateway);
      const http = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: await pki.client('acme') });
      try {
        const rows = await http.get(`/cityxchange/rows?slu_id=46&cnt=3`);
        expect((JSON.parse(rows.body) as { data: Array<{ v1: number }> }).data.map((x) => x.v1)).toEqual([999_845, 999_645, 999_445]);
      } finally {
        http.close();
      }
    } finally {
      await pool.end();
    }
  }, 240_000);

  it('a sluice table from before partitioning: attached as it is (ids and xids kept), cursors from before resume exactly once', async () => {
    const { url, pool } = await emptyDatabase();
    try {
      const upTo9 = (await loadMigrations()).filter((m) => m.id <= 9);
      await migrate(pool, upTo9);
      expect((await pool.query(`select relkind::text as k from pg_class where oid = 'slu_reading'::regclass`)).rows[0].k).toBe('r');
      await pool.query(`insert into slu_reading (slu_id, t, p1, v1) select 1 + n % 200, timestamp '2025-01-01' + make_interval(secs => n * 15), 0.9, n from generate_series(1, ${ROWS}) n`);
      await pool.query('vacuum analyze slu_reading');
      const before = await pool.query<{ sum: string; xids: string }>(`select sum(id)::text as sum, string_agg(distinct xid::text, ',') as xids from slu_reading`);
      const cursor = encodeCursor({ kind: 'settled', s: await currentSnapshot(pool) });
      const r = await takeOverWithWriter(url, pool, 9002);
      expect(r.errors).toEqual([]);
      expect(r.applied.at(-1)).toBe('takeover: slu_reading partitioned');
      expect(r.applied.slice(0, -1).every((m) => Number.parseInt(m, 10) >= 10)).toBe(true); // 001-009 were there
      expect(r.longestMs).toBeLessThan(STALL_BOUND_MS);
      expect(await partitionsOf(pool)).toContain('slu_reading_legacy');
      const after = await pool.query<{ sum: string; xids: string }>(`select sum(id)::text as sum, string_agg(distinct xid::text, ',') as xids from slu_reading where slu_id <> 9002`);
      expect(after.rows[0]).toEqual(before.rows[0]); // the same rows, the same keys: no cache of any gateway goes stale
      // The writer's rows all got ids after the old ones (the sequence went on).
      const w = await pool.query<{ n: number; min: string; max: string }>(`select count(*)::int as n, min(id)::text, max(id)::text from slu_reading where slu_id = 9002`);
      expect(w.rows[0]?.n).toBe(r.written);
      expect(Number(w.rows[0]?.min)).toBeGreaterThan(ROWS);
      // A cursor taken before the takeover resumes on the partitioned table: exactly the writer's rows, once each.
      const { gateway } = await startTestGateway(url, pki, { REST_RATE_LIMIT: '0' });
      gateways.push(gateway);
      const s = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: await pki.client('acme'), query: `slu_id=9002&since=${encodeURIComponent(cursor)}` });
      streams.push(s);
      await s.until(() => s.readings.length >= r.written, 'the replay', 30_000);
      await new Promise((res) => setTimeout(res, 300));
      expect(s.readings.map((x) => x.v1).sort((a, b) => a - b)).toEqual(Array.from({ length: r.written }, (_, i) => i + 1));
    } finally {
      await pool.end();
    }
  }, 240_000);
});
