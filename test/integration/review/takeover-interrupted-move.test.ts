// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: docs/operations.md: the takeover "is safe to interrupt and run again: each step checks what is already
// done". partitionReadings commits the switch, then moves the rows it set aside (t past the cutoff, or no t) in a
// second transaction. If that second transaction does not commit (the process is killed, Ctrl-C, the gateway's
// 10 s statement_timeout on a big set-aside, a lost connection), the next run sees slu_reading partitioned and
// returns at once: the set-aside rows stay in sluice_reading_overflow for good, served by nothing, and the rows
// without t never reach sluice_reading_untimed.
let base: TestDatabase;
let pool: pg.Pool | undefined;
let name: string;

beforeAll(async () => {
  base = await createTestDatabase();
  name = `sluice_review_tkmove_${process.pid}`;
  await base.pool.query(`create database ${name} template template0`);
}, 60_000);
afterAll(async () => {
  await pool?.end();
  await base?.pool.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
  await base?.drop();
});

/** A pool whose connections die on the first statement matching `at` (the process killed right there). */
function dyingPool(p: pg.Pool, at: RegExp): pg.Pool {
  let died = false;
  return new Proxy(p, {
    get(target, prop, recv) {
      if (prop !== 'connect') return Reflect.get(target, prop, recv);
      return async () => {
        const c = await target.connect();
        const query = c.query.bind(c) as (...a: unknown[]) => Promise<unknown>;
        (c as unknown as { query: unknown }).query = (...a: unknown[]) => {
          const text = typeof a[0] === 'string' ? a[0] : (a[0] as { text?: string }).text ?? '';
          if (!died && at.test(text)) {
            died = true;
            return Promise.reject(new Error('killed'));
          }
          return query(...a);
        };
        return c;
      };
    },
  });
}

describe('a takeover interrupted after the switch', () => {
  it('puts the set-aside rows back when it is run again', async () => {
    const url = base.url.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    // A legacy table: a reading from a unit whose clock is a year ahead, and one without a time.
    await pool.query(`create table slu_reading (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real,
                        a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer)`);
    await pool.query(`insert into slu_reading (slu_id, t, v1) values (1, '2025-01-01', 1), (1, (now() at time zone 'utc') + interval '1 year', 2), (1, null, 3)`);
    await migrate(dyingPool(pool, /create table if not exists sluice_reading_untimed/)).catch((e: Error) => console.log(`first run: ${e.message}`));
    const again = await migrate(pool);
    console.log(`second run applied: ${JSON.stringify(again)}`);
    const served = (await pool.query<{ v1: number }>(`select v1 from slu_reading order by v1`)).rows.map((r) => r.v1);
    const untimed = await pool.query(`select v1 from sluice_reading_untimed`).then((r) => r.rows.map((x) => x.v1), () => 'no such table');
    const stranded = await pool.query(`select v1 from sluice_reading_overflow order by v1`).then((r) => r.rows.map((x) => x.v1), () => []);
    console.log(`slu_reading: ${JSON.stringify(served)}; untimed: ${JSON.stringify(untimed)}; left in sluice_reading_overflow: ${JSON.stringify(stranded)}`);
    expect(served).toEqual([1, 2]);
    expect(untimed).toEqual([3]);
  }, 60_000);
});
