import type { Socket } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../src/access/grant-store.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// A resume replays the table from the client's cursor. It must never outlive its client, never hold more than
// one page, never take the database from other partners, and never start from a cursor that would make it scan
// the whole table.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let other: CertAndKey;
let third: CertAndKey;
let oldCursor: string;
const gateways: Gateway[] = [];
const clients: StreamClient[] = [];

const ROWS = 200_000;
// A real collection before each heap reading, so the comparison is of live memory, not of garbage not yet taken.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const liveHeap = () => (gc(), gc(), process.memoryUsage().heapUsed);

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [acme, other, third] = await Promise.all([pki.client('acme'), pki.client('other'), pki.client('third')]);
  for (const p of ['other', 'third']) await grant(db.pool, p, null);
  // A cursor from before 200,000 readings: a legitimate resume that has a lot to replay.
  const g = await gateway();
  const c = open(g, acme, 'slu_id=1');
  oldCursor = ((await c.next('subscribed')).cursor as string) ?? '';
  await c.close();
  await db.pool.query(`insert into slu_reading (slu_id, t, v1, p1, a1)
    select 1 + n % 100, timestamp '2024-01-01' + make_interval(secs => n), n, 0.9, 16.6 from generate_series(1, ${ROWS}) n`);
  await db.pool.query(`insert into slu_reading (slu_id, v1) values (999, 1)`); // one reading at the very end
  await db.pool.query('vacuum analyze slu_reading');
}, 120_000);
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await db?.drop();
  await pki?.close();
});

async function gateway(env: Record<string, string> = {}): Promise<Gateway> {
  const { gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', ...env });
  gateways.push(g);
  return g;
}
function open(g: Gateway, who: CertAndKey, query: string): StreamClient {
  const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: who, query });
  clients.push(c);
  return c;
}
/** A client that stops reading its socket once connected: the kernel buffers fill and writes to it stall. */
function stuck(g: Gateway, who: CertAndKey, query: string): StreamClient {
  const c = open(g, who, query);
  void c.opened.then(() => (c.ws as unknown as { _socket: Socket })._socket.pause(), () => undefined);
  return c;
}
const cursorOf = (s: string) => `c1.${Buffer.from(JSON.stringify({ s })).toString('base64url')}`;

async function replayQueries(): Promise<number> {
  const r = await db.pool.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'sluice-replay' and state = 'active'`,
  );
  return r.rows[0]?.n ?? 0;
}
async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
async function medianRowsMs(g: Gateway, n = 15): Promise<number> {
  const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: other });
  try {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await http.get(`/cityxchange/rows?slu_id=${1 + (i % 100)}&cnt=100`);
      expect(r.status).toBe(200);
      expect(r.json<{ data: unknown[] }>().data).toHaveLength(100);
      times.push(performance.now() - t0);
    }
    return times.sort((a, b) => a - b)[Math.floor(n / 2)] as number;
  } finally {
    http.close();
  }
}

describe('a replay is bounded and stops with its client', () => {
  it('50 replaying clients dropped at once: their queries are cancelled, slots and memory freed, other partners unaffected', async () => {
    // Ten replay at once (each on its own database connection), forty wait for a slot: all fifty are resumes in
    // progress, and all fifty are dropped.
    const g = await gateway({ REPLAY_MAX_CONCURRENT: '10', REPLAY_MAX_PER_PARTNER: '50', WS_MAX_CONNECTIONS_PER_PARTNER: '50', FEED_PAGE_ROWS: '500' });
    const baseline = await medianRowsMs(g);
    const heapBefore = liveHeap();
    // An operator's lock makes every replay query wait inside PostgreSQL: only a cancel can end them early.
    const locker = await db.pool.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table slu_reading in access exclusive mode');
      const replaying = Array.from({ length: 50 }, (_, i) => open(g, acme, `${i % 2 ? 'slu_id=999&' : ''}since=${encodeURIComponent(oldCursor)}`));
      await Promise.all(replaying.map((c) => c.opened));
      await until(() => g.replays.running === 10 && g.replays.waiting === 40, '10 replays running and 40 waiting');
      await until(async () => (await replayQueries()) === 10, '10 replay queries in PostgreSQL');

      for (const c of replaying) c.ws.terminate();
      await until(() => g.replays.running === 0 && g.replays.waiting === 0, 'every replay to stop', 5000);
      // Still locked: the queries are gone because they were cancelled, not because they finished.
      await until(async () => (await replayQueries()) === 0, 'no replay query left in PostgreSQL', 5000);
      await until(() => g.stream.clients === 0 && g.hub.size === 0, 'sessions gone', 5000);
    } finally {
      await locker.query('rollback');
      locker.release();
    }
    // The partner's connection slots are free again: it can open as many streams as before.
    const again = Array.from({ length: 50 }, () => open(g, acme, 'slu_id=1'));
    await Promise.all(again.map((c) => c.next('subscribed')));
    await Promise.all(again.map((c) => c.close()));

    const after = await medianRowsMs(g);
    expect(after, `median /rows after the drop (${after.toFixed(1)} ms) against before (${baseline.toFixed(1)} ms)`).toBeLessThan(baseline * 4 + 25);
    // Nothing of the replays is kept: the heap is back near where it was (pages, frames and buffers released).
    clients.length = 0; // this test's own client objects (all closed) are not the gateway's memory
    // Sockets finish closing asynchronously (more slowly on a busy machine): give them seconds, not forever.
    let grown = Infinity;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      grown = (liveHeap() - heapBefore) / 1024 / 1024;
      if (grown < 32) break;
    }
    // The gateway runs in this process and keeps its log lines in memory (test/setup/gateway.ts): a few MiB are those.
    expect(grown, `live heap grew ${grown.toFixed(1)} MiB`).toBeLessThan(32);
  }, 60_000);

  it('a client that does not take its pages holds one page, then is cut off with 4408 and its slot freed', async () => {
    const g = await gateway({ FEED_PAGE_ROWS: '500', WS_HEARTBEAT_MS: '1000' });
    const hog = stuck(g, acme, `since=${encodeURIComponent(oldCursor)}`);
    await hog.opened;
    await until(() => g.replays.running === 1, 'the replay to run');
    await until(() => g.replays.running === 0, 'the stuck replay to be cut off', 10_000);
    (hog.ws as unknown as { _socket: Socket })._socket.resume();
    await hog.until(() => hog.closeCode !== undefined, 'the close');
    expect(hog.closeCode).toBe(4408);
    expect(hog.closeReason).toMatch(/SLUICE_ERR_SLOW_CONSUMER/);
    // It got pages up to a cursor, and resuming from that cursor continues exactly (nothing lost, no duplicate).
    const got = hog.readings.map((r) => r.v1);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(ROWS);
    const resumed = open(g, acme, `slu_id=1&since=${encodeURIComponent(hog.cursor as string)}`);
    await resumed.until(() => resumed.frames.some((f) => f.type === 'readings'), 'the resumed replay');
    expect(resumed.readings.every((r) => !got.includes(r.v1))).toBe(true);
  }, 30_000);

  it('limits concurrent replays per partner (4429) and per gateway (1013), after a bounded wait', async () => {
    const g = await gateway({ REPLAY_MAX_CONCURRENT: '2', REPLAY_MAX_PER_PARTNER: '1', REPLAY_WAIT_MS: '300', FEED_PAGE_ROWS: '500' });
    const a1 = stuck(g, acme, `since=${encodeURIComponent(oldCursor)}`);
    await until(() => g.replays.running === 1, 'acme replaying');
    const a2 = open(g, acme, `since=${encodeURIComponent(oldCursor)}`);
    await a2.until(() => a2.closeCode !== undefined, 'the partner limit');
    expect(a2.closeCode).toBe(4429);
    expect(a2.frames.find((f) => f.type === 'error')).toMatchObject({ code: 'SLUICE_ERR_REPLAY_LIMIT' });
    const b1 = stuck(g, other, `since=${encodeURIComponent(oldCursor)}`);
    await until(() => g.replays.running === 2, 'two replays');
    const c1 = open(g, third, `since=${encodeURIComponent(oldCursor)}`);
    await c1.until(() => c1.closeCode !== undefined, 'the gateway limit');
    expect(c1.closeCode).toBe(1013);
    expect(c1.frames.find((f) => f.type === 'error')).toMatchObject({ code: 'SLUICE_ERR_REPLAYS_BUSY' });
    // A waiting resume gets the slot as soon as one is free.
    const c2 = open(g, third, `slu_id=999&since=${encodeURIComponent(oldCursor)}`);
    await new Promise((r) => setTimeout(r, 50));
    a1.ws.terminate();
    await c2.until(() => c2.readings.length === 1, 'the queued replay');
    expect(c2.readings[0]).toMatchObject({ slu_id: 999, v1: 1 });
    b1.ws.terminate();
  }, 30_000);
});

describe('cursors that would scan the whole table are refused before any scan', () => {
  it('older than the replay window, or than the clock itself ("1:1:"): 4410; from the future: 4400', async () => {
    const g = await gateway();
    const xmax = Number(((await db.pool.query<{ x: string }>('select pg_snapshot_xmax(pg_current_snapshot())::text as x')).rows[0] as { x: string }).x);
    for (const [cursor, code, err] of [
      [cursorOf('1:1:'), 4410, 'SLUICE_ERR_CURSOR_EXPIRED'],
      [cursorOf(`${xmax + 1000}:${xmax + 1000}:`), 4400, 'SLUICE_ERR_CURSOR_INVALID'],
    ] as const) {
      const c = open(g, acme, `since=${encodeURIComponent(cursor)}`);
      await c.until(() => c.closeCode !== undefined, `close for ${cursor}`);
      expect(c.closeCode).toBe(code);
      expect(c.frames.find((f) => f.type === 'error')).toMatchObject({ code: err });
    }
    // A cursor taken now is fine; once the clock has a mark older than the window that is newer than the cursor,
    // the same cursor is refused.
    const fresh = open(g, acme, 'slu_id=1');
    const cursor = (await fresh.next('subscribed')).cursor as string;
    await fresh.close();
    const ok = open(g, acme, `slu_id=1&since=${encodeURIComponent(cursor)}`);
    await ok.next('subscribed');
    await new Promise((r) => setTimeout(r, 200));
    expect(ok.closeCode).toBeUndefined();
    await db.pool.query(`insert into sluice_xid_clock (xid, at) values (pg_current_xact_id(), now() - interval '8 days')`);
    const old = open(g, acme, `slu_id=1&since=${encodeURIComponent(cursor)}`);
    await old.until(() => old.closeCode !== undefined, 'the window');
    expect(old.closeCode).toBe(4410);
    expect(old.frames.find((f) => f.type === 'error')?.message).toMatch(/replay window/);
    await db.pool.query(`delete from sluice_xid_clock where at < now() - interval '1 day'`);
  });
});
