// Outside review of the stream's fast path (sql/014, Feed.offer): attacker reproductions.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let partner: CertAndKey;
const clients: StreamClient[] = [];

function connect(query: string): StreamClient {
  const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query });
  clients.push(c);
  return c;
}

async function fastReady(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!gateway.feed.fastReady) {
    if (Date.now() > deadline) throw new Error('the fast path did not become ready');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function roleUrl(user: string, password: string): string {
  const u = new URL(db.url);
  u.username = user;
  u.password = password;
  return u.toString();
}


/**
 * The attacks below first ran as a role with no grants. Since sql/015 that role cannot attach sluice_notify_rows()
 * to a table of its own (EXECUTE revoked from PUBLIC): checked here. Each attack then goes on as the database
 * owner, for whom the function still signs nothing outside slu_reading (its tg_relid check): what it tries must
 * deliver nothing either way.
 */
async function forger(role: string): Promise<pg.Client> {
  const evil = new pg.Client({ connectionString: roleUrl(role, 'n') });
  await evil.connect();
  try {
    await expect(evil.query('select key from sluice_notify_key')).rejects.toThrow(/permission denied/);
    await evil.query('begin');
    await evil.query('create temp table probe_fake (slu_id integer, id bigint, xid xid8)');
    await expect(
      evil.query('create trigger probe_notify after insert on probe_fake referencing new table as new_rows for each statement execute function sluice_notify_rows()'),
    ).rejects.toThrow(/permission denied/);
    await evil.query('rollback');
  } finally {
    await evil.end();
  }
  const owner = new pg.Client({ connectionString: db.url });
  await owner.connect();
  return owner;
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme-energy');
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '60000' }));
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('fast path attacks', () => {
  it('any login role (no grants at all) gets sql/014 to MAC rows of its choosing: a temp table with a trigger calling sluice_notify_rows()', async () => {
    await db.pool.query(`drop role if exists nobody6; create role nobody6 login password 'n'`);
    await fastReady();
    const c = connect('slu_id=601');
    await c.next('subscribed');
    const evil = await forger('nobody6');
    try {
      // Found: functions are EXECUTE to PUBLIC and TEMP is granted to PUBLIC, so the SECURITY DEFINER trigger
      // signed whatever the attacker's own table held. Fixed by sql/015 (see forger).
      await evil.query('begin');
      await evil.query(`create temp table fake (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real, a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer, id bigint, xid xid8)`);
      await evil.query(`create trigger fake_notify after insert on fake referencing new table as new_rows for each statement execute function sluice_notify_rows()`);
      await evil.query(`insert into fake (slu_id, t, v1, id, xid) values (601, '2026-01-01 00:00:00', 666666, 424242, pg_current_xact_id())`);
      await evil.query('commit');
    } finally {
      await evil.end();
    }
    const [marker] = [{ slu_id: 601, v1: 1 }];
    await insertReadings(db.pool, [marker]);
    await c.until(() => c.readings.some((r) => r.v1 === 1), 'the marker');
    const inTable = (await db.pool.query('select count(*)::int as n from slu_reading where v1 = 666666')).rows[0].n;
    expect(inTable).toBe(0);
    // Expected: only the real reading. Observed: the forged row 666666 is delivered to the partner.
    expect(c.readings.map((r) => r.v1)).toEqual([1]);
  });

  it('...and since the signed text is copied into frames unparsed, the forged row can carry JSON of its choosing (any comma-free JSON value in an integer field)', async () => {
    await db.pool.query(`drop role if exists nobody7; create role nobody7 login password 'n'`);
    await fastReady();
    const c = connect('slu_id=605');
    await c.next('subscribed');
    const evil = await forger('nobody7');
    try {
      await evil.query('begin');
      await evil.query(`create temp table fake2 (slu_id integer, t text, p1 real, p2 real, p3 real, k1 real, k2 real, k3 real, a1 real, a2 real, a3 real, v1 text, v2 integer, v3 integer, id bigint, xid xid8)`);
      await evil.query(`create trigger fake_notify after insert on fake2 referencing new table as new_rows for each statement execute function sluice_notify_rows()`);
      await evil.query(`insert into fake2 (slu_id, t, v1, id, xid) values (605, '2026-01-01 00:00:00.000000', '{"injected":"pay invoice 42 to IBAN XX"}', 424243, pg_current_xact_id())`);
      await evil.query('commit');
    } finally {
      await evil.end();
    }
    await insertReadings(db.pool, [{ slu_id: 605, v1: 2 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 2), 'the marker');
    console.log('frames:', JSON.stringify(c.readings));
    expect(c.readings.map((r) => typeof r.v1)).toEqual(['number']);
    expect(c.readings.map((r) => r.v1)).toEqual([2]);
  });

  it('INSERT then UPDATE of the same row in one transaction: the stream must deliver the committed values', async () => {
    await fastReady();
    const c = connect('slu_id=602');
    await c.next('subscribed');
    const start = c.cursor as string;
    const w = await db.pool.connect();
    try {
      await w.query('begin');
      await w.query(`insert into slu_reading (slu_id, v1) values (602, 100)`);
      await w.query(`update slu_reading set v1 = 200 where slu_id = 602 and v1 = 100`);
      await w.query('commit');
    } finally {
      w.release();
    }
    await insertReadings(db.pool, [{ slu_id: 602, v1: 300 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 300), 'the marker');
    const table = (await db.pool.query('select v1 from slu_reading where slu_id = 602 order by id')).rows.map((r) => r.v1);
    expect(table).toEqual([200, 300]);
    // The payload's pre-UPDATE text (same (id, xid) as the committed version) is now in the ReadingCache: every
    // answer of this gateway built from that version shows the value the table never committed.
    const http = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: partner });
    let rows: unknown;
    try {
      rows = (await http.get('/cityxchange/rows?slu_id=602&cnt=10')).json<{ data: Array<{ v1: number }> }>().data.map((x) => x.v1).sort();
    } finally {
      http.close();
    }
    const r = connect(`slu_id=602&since=${encodeURIComponent(start)}`);
    await r.until(() => r.readings.some((x) => x.v1 === 300), 'the replayed marker');
    expect({ live: c.readings.map((x) => x.v1), replay: r.readings.map((x) => x.v1), rows }).toEqual({ live: [200, 300], replay: [200, 300], rows: [200, 300] });
  });

  it('INSERT then DELETE in one transaction: nothing of it is committed, nothing may be delivered (nor kept by /latest)', async () => {
    await fastReady();
    const c = connect('slu_id=603');
    await c.next('subscribed');
    const w = await db.pool.connect();
    try {
      await w.query('begin');
      await w.query(`insert into slu_reading (slu_id, v1, t) values (603, 100, '2099-01-01 00:00:00')`);
      await w.query(`delete from slu_reading where slu_id = 603`);
      await w.query('commit');
    } finally {
      w.release();
    }
    await insertReadings(db.pool, [{ slu_id: 604, v1: 300 }]);
    await new Promise((r) => setTimeout(r, 1500));
    const http = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: partner });
    try {
      const latest = await http.get('/cityxchange/latest?slu_id=603');
      console.log('latest 603:', latest.status, latest.body.slice(0, 300));
      expect(latest.body).not.toContain('2099');
    } finally {
      http.close();
    }
    expect(c.readings.map((x) => x.v1)).toEqual([]);
  });
  it('a writer that sets ids itself (the column is a plain sequence default since sql/013): two statements of one transaction with distinct ids, the second\'s ids inside the first\'s span: both delivered', async () => {
    await fastReady();
    const c = connect('slu_id=607');
    await c.next('subscribed');
    const w = await db.pool.connect();
    try {
      await w.query('begin');
      await w.query(`insert into slu_reading (id, slu_id, v1) values (9000010, 607, 1), (9000030, 607, 3)`);
      await w.query(`insert into slu_reading (id, slu_id, v1) values (9000020, 607, 2)`);
      await w.query('commit');
    } finally {
      w.release();
    }
    await insertReadings(db.pool, [{ slu_id: 607, v1: 4 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 4), 'the marker');
    // docs/stream.md limits only "two rows with the same id in one transaction"; these ids are distinct.
    expect(c.readings.map((r) => r.v1).sort()).toEqual([1, 2, 3, 4]);
  });

  it('DELETE then ids reused (setval, as TRUNCATE ... RESTART IDENTITY does) within one transaction: the committed rows (same ids, new values) are delivered, the deleted ones are not', async () => {
    await fastReady();
    const c = connect('slu_id=608');
    await c.next('subscribed');
    // Deletes instead of truncating the shared table, and reuses the ids by setval (RESTART IDENTITY's effect).
    const w = await db.pool.connect();
    try {
      await w.query('begin');
      const { rows } = await w.query<{ id: string }>(`insert into slu_reading (slu_id, v1) values (608, 1), (608, 2) returning id::text`);
      await w.query(`delete from slu_reading where slu_id = 608`);
      await w.query(`select setval('sluice_reading_id_seq', $1::bigint - 1, true)`, [rows[0]?.id]);
      await w.query(`insert into slu_reading (slu_id, v1) values (608, 10), (608, 20)`);
      await w.query('commit');
    } finally {
      w.release();
    }
    await insertReadings(db.pool, [{ slu_id: 608, v1: 99 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 99), 'the marker');
    await new Promise((r) => setTimeout(r, 300));
    expect(c.readings.map((r) => r.v1)).toEqual([10, 20, 99]);
  });

  it('a forged chunk naming the NEXT transaction ids with a huge id span makes the gateway drop the genuine rows of those transactions', async () => {
    await db.pool.query(`drop role if exists nobody9; create role nobody9 login password 'n'`);
    await fastReady();
    const c = connect('slu_id=609');
    await c.next('subscribed');
    const start = c.cursor as string;
    const evil = await forger('nobody9');
    try {
      await evil.query('begin');
      await evil.query(`create temp table fake4 (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real, a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer, id bigint, xid xid8)`);
      await evil.query(`create trigger fake_notify after insert on fake4 referencing new table as new_rows for each statement execute function sluice_notify_rows()`);
      for (let k = 1; k <= 7; k++) {
        await evil.query(`delete from fake4`);
        // Two rows of an SLU nobody watches: ids 0 and 2^53-1, so the chunk's span is every id.
        await evil.query(`insert into fake4 (slu_id, t, id, xid) select 999999, '2026-01-01', i, (pg_current_xact_id()::text::bigint + $1)::text::xid8 from unnest(array[0, 9007199254740991]::bigint[]) i`, [k]);
      }
      await evil.query('commit');
    } finally {
      await evil.end();
    }
    await new Promise((r) => setTimeout(r, 200));
    // A genuine writer, a few transactions.
    for (let v = 1; v <= 3; v++) await insertReadings(db.pool, [{ slu_id: 609, v1: v }]);
    await new Promise((r) => setTimeout(r, 1500));
    const inTable = (await db.pool.query('select v1 from slu_reading where slu_id = 609 order by id')).rows.map((r) => r.v1);
    expect(inTable).toEqual([1, 2, 3]);
    // Resuming with the cursor the gateway gave before the forgery, on this gateway, works (the replay reads the table)...
    const r = connect(`slu_id=609&since=${encodeURIComponent(start)}`);
    await r.until(() => r.readings.length >= 3, 'the replay');
    // ...the live stream lost them.
    expect(c.readings.map((x) => x.v1)).toEqual([1, 2, 3]);
  });

  it('(low) a plain NOTIFY with a far-future xid (no MAC needed, any role) turns the fast path off for good', async () => {
    await db.pool.query(`drop role if exists nobody10; create role nobody10 login password 'n'`);
    await fastReady();
    const evil = await forger('nobody10');
    await evil.query(`select pg_notify('sluice_reading', '9007199254740000')`);
    await evil.end();
    await new Promise((r) => setTimeout(r, 2500)); // two polls
    const ready = gateway.feed.fastReady;
    // Found: the blocker was never cleared (only past 10,000 entries). Now a read that started after it and does
    // not see the transaction drops it.
    expect(ready).toBe(true);
  });

  // Last: it poisons this gateway's cursors for good.
  it('a forged row (as in the first test) with an xid far ahead stays in every cursor the gateway sends: every resume is then refused (4400)', async () => {
    await db.pool.query(`drop role if exists nobody8; create role nobody8 login password 'n'`);
    await fastReady();
    const c = connect('slu_id=606');
    await c.next('subscribed');
    const evil = await forger('nobody8');
    try {
      await evil.query(`create temp table fake3 (slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real, a1 real, a2 real, a3 real, v1 integer, v2 integer, v3 integer, id bigint, xid xid8)`);
      await evil.query(`create trigger fake_notify after insert on fake3 referencing new table as new_rows for each statement execute function sluice_notify_rows()`);
      // An SLU nobody watches: the partner sees nothing odd, only its cursors change.
      await evil.query(`insert into fake3 (slu_id, t, id, xid) values (999999, '2026-01-01', 1, (pg_current_xact_id()::text::bigint + 1000000000)::text::xid8)`);
    } finally {
      await evil.end();
    }
    await new Promise((r) => setTimeout(r, 1500)); // several feed reads: the forged "ahead" row is never confirmed
    await insertReadings(db.pool, [{ slu_id: 606, v1: 5 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 5), 'a real reading');
    const cursor = c.cursor as string;
    console.log('cursor after the forgery:', Buffer.from(cursor.slice(3), 'base64url').toString());
    const r = connect(`slu_id=606&since=${encodeURIComponent(cursor)}`);
    await Promise.race([r.next('subscribed').then(() => new Promise((res) => setTimeout(res, 1000))), r.closed]);
    expect(r.closeCode).toBeUndefined();
  });

});
