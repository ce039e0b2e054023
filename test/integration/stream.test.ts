import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { LATEST_KEYS, StreamClient } from '../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let partner: CertAndKey;
const clients: StreamClient[] = [];

function connect(query?: string, g: Gateway = gateway): StreamClient {
  const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: partner, ...(query !== undefined ? { query } : {}) });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme-energy');
  ({ gateway } = await startTestGateway(db.url, pki));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

let seq = 1000;
/** Distinct readings: v1 carries a unique number so received sets can be compared exactly. */
function readings(sluId: number, n: number) {
  return Array.from({ length: n }, () => ({ slu_id: sluId, v1: seq++, p1: 0.944, k1: 56468.7031, a2: 8.5, v2: 230, v3: 231 }));
}

describe('live stream', () => {
  it('delivers each committed reading in the /latest shape, only to subscribers of its SLU', async () => {
    const two = connect('slu_id=2');
    const one = connect('slu_id=1');
    const all = connect();
    await Promise.all([two.next('subscribed'), one.next('subscribed'), all.next('subscribed')]);
    expect(two.frames[0]).toMatchObject({ type: 'subscribed', slu_ids: [2], count: 1 });
    expect(all.frames[0]).toMatchObject({ type: 'subscribed', slu_ids: 'all', count: null });
    expect(typeof two.cursor).toBe('string');

    const r1 = readings(1, 3);
    const r2 = readings(2, 2);
    await insertReadings(db.pool, [...r1, ...r2]);
    await two.until(() => two.readings.length >= 2, 'SLU 2 readings');
    await one.until(() => one.readings.length >= 3, 'SLU 1 readings');
    await all.until(() => all.readings.length >= 5, 'all readings');
    expect(two.readings.map((r) => r.v1)).toEqual(r2.map((r) => r.v1));
    expect(one.readings.map((r) => r.v1)).toEqual(r1.map((r) => r.v1));
    expect(all.readings.map((r) => r.v1).sort()).toEqual([...r1, ...r2].map((r) => r.v1).sort());
    const sample = two.readings[0] as Record<string, unknown>;
    expect(Object.keys(sample)).toEqual(LATEST_KEYS);
    expect(sample).toMatchObject({ slu_id: 2, p1: '0.944000006', k1: '56468.7031', a2: '8.5', p2: null, v2: 230 });
    // One statement = one transaction = one frame for each client.
    expect(all.frames.filter((f) => f.type === 'readings')).toHaveLength(1);
    expect(all.frames.at(-1)?.cursor).toEqual(expect.stringMatching(/^c1\./));
  });

  it('changes the subscription while live', async () => {
    const c = connect('slu_id=10');
    await c.next('subscribed');
    c.send({ type: 'subscribe', slu_ids: [11, 12] });
    // Answers list what the message changed and the new total, not the whole subscription.
    const added = await c.next('subscribed', 1);
    expect(added).toMatchObject({ added: [11, 12], count: 3 });
    expect(added).not.toHaveProperty('slu_ids');
    const a = readings(11, 1);
    await insertReadings(db.pool, [...readings(13, 1), ...a]);
    await c.until(() => c.readings.length >= 1, 'SLU 11');
    expect(c.readings.map((r) => r.slu_id)).toEqual([11]);
    const mark = c.frames.length;
    c.send({ type: 'unsubscribe', slu_ids: [10, 11] });
    expect(await c.next('unsubscribed', mark)).toMatchObject({ removed: [10, 11], count: 1 });
    const b = readings(12, 1);
    await insertReadings(db.pool, [...readings(11, 2), ...b]);
    await c.until(() => c.readings.length >= 2, 'SLU 12');
    expect(c.readings.map((r) => r.v1)).toEqual([a[0]?.v1, b[0]?.v1]);
    // Replacing the whole subscription answers with the whole (short) subscription.
    const again = c.frames.length;
    c.send({ type: 'subscribe', slu_ids: [12, 14, 14] });
    expect(await c.next('subscribed', again)).toMatchObject({ added: [14], count: 2 });
    c.send({ type: 'unsubscribe', all: true });
    expect(await c.next('unsubscribed', again)).toMatchObject({ slu_ids: [], count: 0 });
    c.send({ type: 'subscribe', all: true });
    await c.until(() => c.frames.slice(again).filter((f) => f.type === 'subscribed').length === 2, 'the answer to subscribe all');
    expect(c.frames.slice(again).filter((f) => f.type === 'subscribed')[1]).toMatchObject({ slu_ids: 'all', count: null });
  });

  it('batches what commits together into one frame per client', async () => {
    const c = connect('slu_id=20,21');
    await c.next('subscribed');
    const rows = readings(20, 500).concat(readings(21, 500));
    await insertReadings(db.pool, rows);
    await c.until(() => c.readings.length >= 1000, '1000 readings');
    expect(c.frames.filter((f) => f.type === 'readings').length).toBe(1);
    expect(c.readings.map((r) => r.v1)).toEqual(rows.map((r) => r.v1));
  });
});

describe('resume', () => {
  it('after a disconnect, with concurrent writers committing out of order, delivers the committed set exactly once', async () => {
    const slu = 30;
    const first = connect(`slu_id=${slu}`);
    await first.next('subscribed');
    const before = readings(slu, 3);
    await insertReadings(db.pool, before);
    await first.until(() => first.readings.length >= 3, 'first readings');
    const cursor = first.cursor as string;
    await first.close();

    // Writer A opens a transaction (gets the lower ids) and holds it across the reconnect; writer B commits.
    const a = new pg.Client({ connectionString: db.url });
    await a.connect();
    await a.query('begin');
    const heldRows = readings(slu, 4);
    await insertReadings(a, heldRows);
    const whileAway = readings(slu, 5);
    await insertReadings(db.pool, whileAway);

    const second = connect(`slu_id=${slu}&since=${encodeURIComponent(cursor)}`);
    await second.until(() => second.readings.length >= 5, 'replayed readings');
    const live = readings(slu, 2);
    await insertReadings(db.pool, live);
    await a.query('commit'); // commits after B's rows although its ids are lower
    await a.end();
    const after = readings(slu, 2);
    await insertReadings(db.pool, after);
    const expected = [...whileAway, ...live, ...heldRows, ...after].map((r) => r.v1);
    await second.until(() => second.readings.length >= expected.length, 'all readings after resume');
    await new Promise((r) => setTimeout(r, 300)); // anything extra (a duplicate) would arrive now
    const got = second.readings.map((r) => r.v1);
    expect(new Set(got).size).toBe(got.length);
    expect([...got].sort()).toEqual([...expected].sort());
    expect(got.filter((v) => before.some((b) => b.v1 === v))).toEqual([]);
    // Rows of one writer keep their order.
    expect(got.filter((v) => heldRows.some((h) => h.v1 === v))).toEqual(heldRows.map((r) => r.v1));
  });

  it('resumes on another gateway process of the same database, in pages, with every page carrying a resumable cursor', async () => {
    const { gateway: other } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '10' });
    try {
      const slu = 40;
      const c = connect(`slu_id=${slu}`);
      await c.next('subscribed');
      const cursor = c.cursor as string;
      await c.close();
      const rows = readings(slu, 35);
      for (let i = 0; i < rows.length; i += 7) await insertReadings(db.pool, rows.slice(i, i + 7));
      const r = connect(`slu_id=${slu}&since=${encodeURIComponent(cursor)}`, other);
      await r.until(() => r.readings.length >= 35, 'replay on the other gateway');
      expect(r.readings.map((x) => x.v1)).toEqual(rows.map((x) => x.v1));
      expect(r.frames.filter((f) => f.type === 'readings').length).toBeGreaterThanOrEqual(4); // 10-row pages

      // Cut off after the second page: its cursor resumes exactly after it.
      const midCursor = (r.frames.filter((f) => f.type === 'readings')[1] as unknown as { cursor: string }).cursor;
      const again = connect(`slu_id=${slu}&since=${encodeURIComponent(midCursor)}`, other);
      await again.until(() => again.readings.length >= 15, 'rest of the replay');
      expect(again.readings.map((x) => x.v1)).toEqual(rows.slice(20).map((x) => x.v1));
    } finally {
      await other.close();
    }
  });

  it('two gateway processes each deliver to their own clients', async () => {
    const { gateway: other } = await startTestGateway(db.url, pki);
    try {
      const a = connect('slu_id=50');
      const b = connect('slu_id=50', other);
      await Promise.all([a.next('subscribed'), b.next('subscribed')]);
      const rows = readings(50, 3);
      await insertReadings(db.pool, rows);
      await Promise.all([a.until(() => a.readings.length >= 3, 'a'), b.until(() => b.readings.length >= 3, 'b')]);
      expect(a.readings.map((r) => r.v1)).toEqual(rows.map((r) => r.v1));
      expect(b.readings.map((r) => r.v1)).toEqual(rows.map((r) => r.v1));
    } finally {
      await other.close();
    }
  });

  it('refuses a cursor older than the retained data, and one that is not from this database', async () => {
    const c = connect('slu_id=60');
    await c.next('subscribed');
    const old = c.cursor as string;
    await c.close();
    await insertReadings(db.pool, [{ slu_id: 60, t: '2020-01-01 00:00:00', v1: 1 }]);
    await db.pool.query(`select sluice_prune('1 year')`);
    const expired = connect(`slu_id=60&since=${encodeURIComponent(old)}`);
    await expired.closed;
    expect(expired.closeCode).toBe(4410);
    expect(expired.closeReason).toMatch(/SLUICE_ERR_CURSOR_EXPIRED/);
    expect(expired.frames.find((f) => f.type === 'error')).toMatchObject({ code: 'SLUICE_ERR_CURSOR_EXPIRED' });

    const future = 'c1.' + Buffer.from(JSON.stringify({ s: '999999999:999999999:' })).toString('base64url');
    const f = connect(`since=${future}`);
    await f.closed;
    expect(f.closeCode).toBe(4400);
    expect(f.closeReason).toMatch(/SLUICE_ERR_CURSOR_INVALID/);
  });
});

describe('graceful shutdown', () => {
  it('closes stream clients with 1012 and their cursor resumes on another gateway with nothing lost', async () => {
    const { gateway: leaving } = await startTestGateway(db.url, pki);
    const c = connect('slu_id=70', leaving);
    await c.next('subscribed');
    const before = readings(70, 3);
    await insertReadings(db.pool, before);
    await c.until(() => c.readings.length >= 3, 'readings before shutdown');
    await leaving.close();
    await c.closed;
    expect(c.closeCode).toBe(1012);
    expect(c.closeReason).toMatch(/SLUICE_ERR_GOING_AWAY/);
    const during = readings(70, 4); // committed while the client has no gateway
    await insertReadings(db.pool, during);
    const r = connect(`slu_id=70&since=${encodeURIComponent(c.cursor as string)}`);
    await r.until(() => r.readings.length >= 4, 'readings after moving to the other gateway');
    expect(r.readings.map((x) => x.v1)).toEqual(during.map((x) => x.v1));
  });
});

describe('idle clients', () => {
  it('get progress frames with a fresher cursor while other SLUs are busy', async () => {
    const { gateway: g } = await startTestGateway(db.url, pki, { WS_PROGRESS_MS: '200' });
    try {
      const idle = new StreamClient(g.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=999' });
      clients.push(idle);
      const first = await idle.next('subscribed');
      await insertReadings(db.pool, readings(1, 3));
      const progress = await idle.next('progress');
      expect(progress.cursor).not.toBe(first.cursor);
      expect(idle.readings).toHaveLength(0);
    } finally {
      await g.close();
    }
  });
});
