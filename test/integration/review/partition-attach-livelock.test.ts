// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maintainPartitions } from '../../../src/db/partitions.ts';
import { createPool } from '../../../src/db/pool.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: after maintenance has not run for more than PARTITIONS_AHEAD periods (every gateway stopped over a long
// weekend, or maintenance failing for another reason), the field writers' current readings land in the default
// partition. The next round makes the partition for the period holding now: sluice_add_partition moves the
// default partition's rows of that range with one statement, then ATTACH PARTITION re-checks the default partition
// under its ACCESS EXCLUSIVE lock. Any reading a writer committed between the two fails the check with 23514,
// which withShortLocks does not retry: the whole maintenance round throws, so no partition is made, nothing turns
// cold and RETENTION never runs. Field writers write into exactly that range all the time, so every later round
// fails the same way: the default partition takes every write (each noted) and grows without end.
let db: TestDatabase;
let db2: TestDatabase;
const DAY = 86_400;
// ~65 readings a second in all (1,000 SLUs reporting every 15 s), in single-row autocommit inserts.
const WRITERS = 2;
const PAUSE_MS = 30;

beforeAll(async () => {
  [db, db2] = await Promise.all([createTestDatabase(), createTestDatabase()]);
}, 60_000);
afterAll(async () => {
  await db?.drop();
  await db2?.drop();
});

describe('maintenance after a stop, under steady writers', () => {
  it('makes the partition for now and applies retention while the field keeps writing', async () => {
    const first = (await db.pool.query<{ lo: string }>(`select to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as lo from sluice_partition`)).rows[0]?.lo as string;
    // "now" is 10 days after the first partition: the gateways were down; partitions ahead ran out 7 days ago.
    const now = (await db.pool.query<{ n: string }>(`select to_char(timestamp '${first}' + interval '10 days 6 hours', 'YYYY-MM-DD HH24:MI:SS') as n`)).rows[0]?.n as string;
    // The hours since the period began are in the default partition already (the gateways were down): 200,000 rows.
    await db.pool.query(`insert into slu_reading (slu_id, t, v1) select 1 + n % 1000, date_trunc('day', timestamp '${now}') + make_interval(secs => n * 0.1), n
                         from generate_series(1, 200000) n order by random()`); // (in random order: see late-note-quadratic.test.ts)
    // Field writers, each a plain insert of a current reading (t = "now" as the writers' clocks say).
    let running = true;
    const errors: string[] = [];
    let written = 0;
    const writers = Array.from({ length: WRITERS }, async (_, i) => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      while (running) {
        await c.query(`insert into slu_reading (slu_id, t, v1) values ($1, timestamp '${now}' + make_interval(secs => random() * 60), 1)`, [100 + i]).then(
          () => { written++; },
          (e: Error) => errors.push(e.message),
        );
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
      await c.end();
    });
    await new Promise((r) => setTimeout(r, 300));
    const failures: string[] = [];
    let report: Awaited<ReturnType<typeof maintainPartitions>>;
    for (let round = 0; round < 5; round++) {
      try {
        report = await maintainPartitions(db.pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, retentionS: 3 * DAY, now });
        break;
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    running = false;
    await Promise.all(writers);
    console.log(`${written} inserts; maintenance rounds that failed: ${failures.length}; first: ${failures[0] ?? '-'}`);
    expect(errors).toEqual([]);
    expect(failures).toEqual([]);
    // Fix: after such a gap the next partition starts at the next period (src/db/partitions.ts): the period holding
    // now stays in the default partition (read through its notes) instead of moving a backlog under a lock.
    const period = (await db.pool.query<{ n: number }>(
      `select count(*)::int as n from sluice_partition where lo <= timestamp '${now}' + interval '1 day' and hi > timestamp '${now}' + interval '1 day'`,
    )).rows[0]?.n;
    expect(period).toBe(1); // the next period has its partition
    // Retention ran: the first partitions (10 days old, retention 3 days) are gone.
    expect((await db.pool.query(`select 1 from sluice_partition where lo = timestamp '${first}'`)).rowCount).toBe(0);
  }, 60_000);

  // The same gap without any writer: the gateway runs the maintenance on its REST pool (database.ts), whose client
  // side query_timeout (PG_QUERY_TIMEOUT_MS, 10 s) still applies after `set statement_timeout = 0`. Moving the gap's
  // rows out of the default partition is one statement; past the timeout the client gives up, rolls the round back,
  // and every later round does the same. The move costs ~2.7 us a row here: 500,000 rows with a 1 s timeout stand
  // for ~5M rows with the default 10 s (the first 21 hours of a day of 1,000 SLUs at 15 s).
  it('makes the partition for now when the default partition holds many rows of its period', async () => {
    const first = (await db2.pool.query<{ lo: string }>(`select to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as lo from sluice_partition`)).rows[0]?.lo as string;
    const now = (await db2.pool.query<{ n: string }>(`select to_char(timestamp '${first}' + interval '10 days 12 hours', 'YYYY-MM-DD HH24:MI:SS') as n`)).rows[0]?.n as string;
    await db2.pool.query(`set statement_timeout = 0`);
    await db2.pool.query(`insert into slu_reading (slu_id, t, v1) select 1 + n % 1000, date_trunc('day', timestamp '${now}') + make_interval(secs => n * 0.1), n
                          from generate_series(1, 500000) n order by random()`);
    const pool = createPool({ connectionString: db2.url, max: 2, connectTimeoutMs: 5000, queryTimeoutMs: 1000 }); // the gateway's pool, scaled
    const failures: string[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        try {
          await maintainPartitions(pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, now });
          break;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    } finally {
      await pool.end();
    }
    console.log(`rounds that failed: ${failures.length}; first: ${failures[0] ?? '-'}`);
    expect(failures).toEqual([]);
  }, 60_000);
});
