import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { freePort } from '../setup/global-setup.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { startTcpProxy } from '../setup/tcp-proxy.ts';
import { httpsClient } from '../setup/https-client.ts';
import { StreamClient } from '../setup/ws-client.ts';

let pki: TestPki;
let partner: CertAndKey;
beforeAll(async () => {
  pki = await createTestPki();
  partner = await pki.client('acme-energy');
});
afterAll(async () => pki?.close());

let seq = 1;
const rows = (slu: number, n: number) => Array.from({ length: n }, () => ({ slu_id: slu, v1: seq++ }));

async function readyz(g: Gateway): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${g.opsPort}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('PostgreSQL restarted mid-stream', () => {
  let embedded: EmbeddedPostgres;
  let dir: string;
  let port: number;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    // A server of its own: restarting the shared one would disturb the other test files.
    dir = path.resolve(`var/test-pg-restart-${randomBytes(3).toString('hex')}`);
    port = await freePort();
    embedded = await startEmbeddedPostgres({ dir, port, ephemeral: true });
  });
  afterAll(async () => {
    await gateway?.close();
    await embedded?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reconnects LISTEN, reports readiness, and every client ends with every row exactly once', async () => {
    const started = await startTestGateway(embedded.url, pki, { LISTEN_RETRY_BASE_MS: '50', LISTEN_RETRY_CAP_MS: '500', LISTEN_HEALTHCHECK_MS: '500', PG_CONNECT_TIMEOUT_MS: '500' });
    gateway = started.gateway;
    const g = gateway;
    const a = new StreamClient(g.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=1' });
    const b = new StreamClient(g.port, { ca: pki.ca.certPem, client: partner });
    await Promise.all([a.next('subscribed'), b.next('subscribed')]);
    // pg-pool's end() does not wait for sockets to close: a client still closing when the server shuts down
    // gets its FATAL 57P01 after the pool dropped its listeners. Give each client one of its own.
    const writer = () => {
      const p = new pg.Pool({ connectionString: embedded.url, max: 1 });
      p.on('error', () => undefined); // an idle client's FATAL 57P01 is re-emitted on the pool
      p.on('connect', (c) => c.on('error', () => undefined));
      return p;
    };
    let w = writer();
    const before = rows(1, 5).concat(rows(2, 5));
    await insertReadings(w, before);
    await b.until(() => b.readings.length >= 10, 'readings before the restart');
    expect((await readyz(g)).status).toBe(200);
    await w.end();

    await embedded.close(); // PostgreSQL goes away (fast shutdown): every connection drops
    await g.listener.once ? new Promise((r) => (g.listener.state === 'reconnecting' ? r(undefined) : g.listener.once('state', r))) : undefined;
    const down = await readyz(g);
    expect(down.status).toBe(503);
    expect(down.body.listener).toBe('reconnecting');
    // Down for 10 s, as operators see in a failover: REST answers 503 in bounded time, streams stay open.
    const downAt = Date.now();
    const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: partner });
    const during503 = await rest.get('/cityxchange/rows?slu_id=1&cnt=1');
    expect(during503.status).toBe(503);
    expect(during503.json()).toMatchObject({ code: 'SLUICE_ERR_DB_UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - downAt))));
    expect((await readyz(g)).status).toBe(503);
    expect(a.closeCode).toBeUndefined();

    embedded = await startEmbeddedPostgres({ dir, port, ephemeral: true });
    // Writers get in before the gateway's LISTEN is back: only the catch-up can deliver these.
    w = writer();
    const during = rows(1, 20).concat(rows(2, 20));
    await insertReadings(w, during);
    await new Promise<void>((r) => (g.listener.state === 'listening' ? r() : g.listener.once('listening', () => r())));
    const after = rows(1, 5).concat(rows(2, 5));
    await insertReadings(w, after);
    await w.end();

    const all = [...before, ...during, ...after];
    await b.until(() => b.readings.length >= all.length, 'every row on the all-SLU client', 20_000);
    await a.until(() => a.readings.length >= all.filter((r) => r.slu_id === 1).length, 'every SLU 1 row', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.readings.map((r) => r.v1)).toEqual(all.map((r) => r.v1));
    expect(a.readings.map((r) => r.v1)).toEqual(all.filter((r) => r.slu_id === 1).map((r) => r.v1));
    expect(g.listener.reconnects).toBeGreaterThanOrEqual(1);
    await expect.poll(async () => (await readyz(g)).status, { timeout: 5000 }).toBe(200);
    expect((await rest.get('/cityxchange/rows?slu_id=1&cnt=1')).status).toBe(200);
    rest.close();
    await Promise.all([a.close(), b.close()]);
  }, 60_000);
});

describe('gateway cut off from the database while writers continue', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('catches up on everything committed during the outage', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port) });
    const { gateway } = await startTestGateway(proxy.via(db.url), pki, { FEED_PAGE_ROWS: '10', LISTEN_RETRY_BASE_MS: '50', LISTEN_RETRY_CAP_MS: '300', LISTEN_HEALTHCHECK_MS: '300', PG_CONNECT_TIMEOUT_MS: '500' });
    const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=7' });
    try {
      await c.next('subscribed');
      const r1 = rows(7, 3);
      await insertReadings(db.pool, r1);
      await c.until(() => c.readings.length >= 3, 'before');
      proxy.cut();
      await new Promise<void>((r) => (gateway.listener.state === 'reconnecting' ? r() : gateway.listener.once('state', () => r())));
      const r2 = rows(7, 50); // committed directly, while the gateway cannot see the database
      for (let i = 0; i < 50; i += 10) await insertReadings(db.pool, r2.slice(i, i + 10));
      proxy.restore();
      await c.until(() => c.readings.length >= 53, 'the outage backlog', 15_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(c.readings.map((r) => r.v1)).toEqual([...r1, ...r2].map((r) => r.v1));
    } finally {
      await c.close();
      await gateway.close();
      await proxy.close();
    }
  });
});

/** True once the gateway has dropped one of its two stream clients. */
function closedByServer(g: Gateway): boolean {
  return g.stream.clients < 2;
}

describe('slow consumer', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('is cut off with 4408 while a fast client of the same SLU gets everything', { timeout: 90_000 }, async () => {
    const { gateway } = await startTestGateway(db.url, pki, { WS_MAX_BUFFER_BYTES: '65536' });
    const fast = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=3' });
    const slow = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=3' });
    try {
      await Promise.all([fast.next('subscribed'), slow.next('subscribed')]);
      // The slow client stops reading from its socket: the server's unsent bytes for it grow.
      (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      // Enough data (~25 MB) to fill the kernel's socket buffers on both sides, so ws's own buffer must grow.
      const all: Array<{ slu_id: number; v1: number }> = [];
      const writer = new pg.Pool({ connectionString: db.url, max: 1 });
      for (let i = 0; i < 100 && slow.closeCode === undefined && !closedByServer(gateway); i++) {
        const batch = rows(3, 1000);
        all.push(...batch);
        await insertReadings(writer, batch);
      }
      await writer.end();
      await fast.until(() => fast.readings.length >= all.length, 'everything on the fast client', 30_000).catch((e) => {
        const got = new Set(fast.readings.map((r) => r.v1));
        const missing = all.filter((r) => !got.has(r.v1)).map((r) => r.v1);
        console.error('slow-consumer test: expected', all.length, 'fast', fast.readings.length, 'missing', missing.length, missing[0], missing.at(-1), 'frames', fast.frames.length);
        throw e;
      });
      expect(fast.readings.map((r) => r.v1)).toEqual(all.map((r) => r.v1));
      expect(closedByServer(gateway)).toBe(true);
      (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
      await slow.closed;
      expect([4408, 1006]).toContain(slow.closeCode); // 4408 when the close frame got through before the cut
      expect(slow.readings.length).toBeLessThan(all.length);
      // It resumes with its last cursor and gets the rest, exactly.
      const again = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: `slu_id=3&since=${encodeURIComponent(slow.cursor as string)}` });
      await again.until(() => slow.readings.length + again.readings.length >= all.length, 'the rest after resume', 20_000);
      expect([...slow.readings, ...again.readings].map((r) => r.v1)).toEqual(all.map((r) => r.v1));
      await again.close();
    } finally {
      await Promise.all([fast.close(), slow.close()]);
      await gateway.close();
    }
  });
});
