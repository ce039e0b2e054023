// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrate } from '../../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: docs/operations.md, install step 1: "The field writers keep their own role and only need INSERT on
// slu_reading." With partitioned storage a writer's plain INSERT now also needs
//   - USAGE on sluice_reading_id_seq: id is `default nextval(...)` (before: an identity column, which needs no
//     sequence privilege), on a fresh install and after any takeover;
//   - INSERT and UPDATE on sluice_reading_late: the late-note trigger runs as the writer, for every row into the
//     default partition or a cold one;
//   - INSERT on the NEW partitioned slu_reading: the takeover renames the table the writer was granted to
//     slu_reading_legacy and creates a new slu_reading with no grants at all (and during the takeover, INSERT on
//     sluice_reading_overflow for future-dated rows).
// So every insert of a writer that follows the documented setup fails, on a fresh install and after a takeover.
let db: TestDatabase;
const role = `sluice_writer_${randomBytes(3).toString('hex')}`;
const extra: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(`create role ${role} login password 'w'`);
}, 60_000);
afterAll(async () => {
  for (const n of extra) await db.pool.query(`drop database if exists ${n} with (force)`).catch(() => undefined);
  await db?.pool.query(`drop owned by ${role}`).catch(() => undefined);
  await db?.drop();
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  await admin.query(`drop role if exists ${role}`).catch((e: Error) => console.log(`could not drop role ${role}: ${e.message}`));
  await admin.end();
});

const as = (url: string) => {
  const u = new URL(url);
  u.username = role;
  u.password = 'w';
  return u.toString();
};

async function tryInserts(url: string, rows: Array<[label: string, sql: string]>): Promise<Record<string, string>> {
  const c = new pg.Client({ connectionString: as(url) });
  await c.connect();
  const out: Record<string, string> = {};
  try {
    for (const [label, sql] of rows) out[label] = await c.query(sql).then(() => 'ok', (e: Error) => e.message);
  } finally {
    await c.end();
  }
  return out;
}

describe('a field writer with its own role and INSERT on slu_reading', () => {
  it('inserts on a fresh install (current, far past and far future t)', async () => {
    await db.pool.query(`grant usage on schema public to ${role}`);
    await db.pool.query(`grant insert on slu_reading to ${role}`);
    const r = await tryInserts(db.url, [
      ['now', `insert into slu_reading (slu_id, p1, v1) values (1, 0.5, 230)`],
      ['1999', `insert into slu_reading (slu_id, t, p1, v1) values (1, '1999-01-01', 0.5, 230)`],
    ]);
    console.log('fresh install:', JSON.stringify(r));
    // Even with the sequence granted too, a write into the default (or a cold) partition fails in the note trigger.
    await db.pool.query(`grant usage on sequence sluice_reading_id_seq to ${role}`);
    const r2 = await tryInserts(db.url, [['1999 with the sequence granted', `insert into slu_reading (slu_id, t, p1, v1) values (1, '1999-01-01', 0.5, 230)`]]);
    console.log('fresh install, sequence granted:', JSON.stringify(r2));
    expect(r).toEqual({ now: 'ok', '1999': 'ok' });
    expect(r2).toEqual({ '1999 with the sequence granted': 'ok' });
  });

  it('keeps inserting through a takeover of its legacy table', async () => {
    const name = `sluice_review_role_${process.pid}`;
    await db.pool.query(`create database ${name} template template0`);
    extra.push(name);
    const url = db.url.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    try {
      await pool.query(`create table slu_reading (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real,
                          a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer)`);
      await pool.query(`grant usage on schema public to ${role}`);
      await pool.query(`grant insert on slu_reading to ${role}`);
      const before = await tryInserts(url, [['before', `insert into slu_reading (slu_id, t, p1, v1) values (1, now() at time zone 'utc', 0.5, 230)`]]);
      expect(before).toEqual({ before: 'ok' });
      await migrate(pool);
      const r = await tryInserts(url, [['after', `insert into slu_reading (slu_id, t, p1, v1) values (1, now() at time zone 'utc', 0.5, 230)`]]);
      console.log('after the takeover:', JSON.stringify(r));
      expect(r).toEqual({ after: 'ok' });
    } finally {
      await pool.end();
    }
  }, 60_000);
});
