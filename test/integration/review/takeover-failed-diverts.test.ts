// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { openDatabase } from '../../../src/db/database.ts';
import { loadMigrations, migrate } from '../../../src/db/migrate.ts';
import { createLogger } from '../../../src/log.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: the upgrade path. docs/operations.md: "A gateway of a new version migrates at start", and previous-version
// gateways keep serving meanwhile. At start the gateway migrates with its REST pool, whose connections carry
// statement_timeout = PG_QUERY_TIMEOUT_MS (default 10 s). partitionReadings first installs the overflow trigger
// (every row with t >= cutoff, or t null, goes to sluice_reading_overflow instead of slu_reading), then runs
// VALIDATE CONSTRAINT, a full scan: ~0.16 s per million rows here, so past ~60M rows (10 days of 1,000 SLUs at 15 s)
// it hits the timeout. The error leaves the trigger in place; nothing removes it. Once the clock passes the cutoff
// (the end of the current period, at least an hour away), every reading any writer commits goes to the overflow
// table: gone from slu_reading, from every gateway still running (/rows, /latest, the stream), until some later
// takeover succeeds; a gateway restarted by systemd just fails the same way again. (The same happens when
// `npm run migrate` is interrupted, which the docs call safe, or its own 600 s timeout is hit.)
//
// Here the table has 2.5M rows, so the timeout that stands for the default 10 s on ~60M rows is 100 ms (the lowest PG_QUERY_TIMEOUT_MS allowed).
const ROWS = 2_500_000;
let base: TestDatabase;
let pool: pg.Pool | undefined;
let name: string;

beforeAll(async () => {
  base = await createTestDatabase();
  name = `sluice_review_tko_${process.pid}`;
  await base.pool.query(`create database ${name} template template0`);
}, 60_000);
afterAll(async () => {
  await pool?.end();
  await base?.pool.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
  await base?.drop();
});

describe('a takeover that fails at gateway start', () => {
  it('leaves writers writing into slu_reading', async () => {
    const url = base.url.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    await migrate(pool, (await loadMigrations()).filter((m) => m.id <= 9)); // a sluice database before partitioning
    await pool.query(`set statement_timeout = 0`);
    await pool.query(`insert into slu_reading (slu_id, t, p1, v1) select 1 + n % 1000, timestamp '2025-01-01' + make_interval(secs => n), 0.9, n from generate_series(1, ${ROWS}) n`);
    await pool.query('vacuum analyze slu_reading');
    // The new version's gateway starts (openDatabase is what createGateway runs first).
    const config = loadConfig({ DATABASE_URL: url, PG_QUERY_TIMEOUT_MS: '100', LOG_LEVEL: 'silent' });
    const log = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
    let failed: string | undefined;
    await openDatabase(config, log).then((db) => db.close(), (err: Error) => (failed = err.message));
    console.log(`gateway start: ${failed ?? 'ok'}`);
    const trigger = await pool.query(`select tgname from pg_trigger where tgrelid = to_regclass('slu_reading') and tgname = 'sluice_takeover_overflow'`);
    console.log(`overflow trigger left on slu_reading: ${trigger.rowCount === 1}`);
    // Time passes the cutoff: a field writer's plain insert of a current reading (2 days on: past any cutoff).
    await pool.query(`insert into slu_reading (slu_id, t, p1, v1) values (7, (now() at time zone 'utc') + interval '2 days', 0.5, -77)`);
    const inTable = (await pool.query(`select count(*)::int as n from slu_reading where v1 = -77`)).rows[0].n;
    const aside = (await pool.query(`select count(*)::int as n from sluice_reading_overflow where v1 = -77`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]?.n;
    console.log(`the writer's reading: in slu_reading ${inTable}, in sluice_reading_overflow ${aside}`);
    expect(inTable).toBe(1);
  }, 180_000);
});
