import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import type { HandshakeGuard } from '../../src/tls/handshake-guard.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// The handshake queue (src/tls/handshake-queue.ts): at most MAX_HANDSHAKES_IN_FLIGHT handshakes at once, the rest
// wait. `paced` lets 2 through at a time with a queue bounded by MAX_PENDING_HANDSHAKES=12; `quick` lets 1 through
// and closes what has not finished its handshake 500 ms after its TCP connection, queue time included.
const IN_FLIGHT = 2;
const PENDING = 12;
const QUICK_TIMEOUT_MS = 500;

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let paced: Gateway;
let quick: Gateway;
const sockets: net.Socket[] = [];
const streams: StreamClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  paced = (await startTestGateway(db.url, pki, {
    MAX_HANDSHAKES_IN_FLIGHT: String(IN_FLIGHT),
    MAX_PENDING_HANDSHAKES: String(PENDING),
    MAX_PENDING_HANDSHAKES_PER_ADDRESS: String(PENDING),
    TLS_HANDSHAKE_TIMEOUT_MS: '30000',
  })).gateway;
  quick = (await startTestGateway(db.url, pki, { MAX_HANDSHAKES_IN_FLIGHT: '1', TLS_HANDSHAKE_TIMEOUT_MS: String(QUICK_TIMEOUT_MS) })).gateway;
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(streams.splice(0).map((s) => s.close()));
  for (const g of [paced, quick]) if (g) await until(g.handshakes, () => g.handshakes.pending === 0, 'nothing pending');
});
afterAll(async () => {
  await paced?.close();
  await quick?.close();
  await db?.drop();
  await pki?.close();
});

/** A TCP connection that sends nothing; `ended` says how the server closed it. */
async function silent(port: number, localAddress = '127.0.0.2') {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  sockets.push(socket);
  const probe = { socket, ended: undefined as 'fin' | 'reset' | 'error' | undefined, closed: new Promise<void>((r) => socket.once('close', () => r())) };
  socket.on('end', () => (probe.ended ??= 'fin'));
  socket.on('error', (err: NodeJS.ErrnoException) => (probe.ended ??= err.code === 'ECONNRESET' ? 'reset' : 'error'));
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  return probe;
}

function until(guard: HandshakeGuard, pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const events = ['admitted', 'refused', 'released'] as const;
    const done = () => {
      clearTimeout(timer);
      for (const e of events) guard.off(e, check);
    };
    const check = () => {
      if (!pred()) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what} (pending ${guard.pending}, queued ${guard.queued})`));
    }, timeoutMs);
    for (const e of events) guard.on(e, check);
    check();
  });
}

async function metric(g: Gateway, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${g.opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('the TLS handshake queue', () => {
  it('a burst of 40 stream clients and 10 REST requests is queued, and every one is admitted and served', async () => {
    const g = paced;
    await insertReadings(db.pool, [{ slu_id: 51, v1: 5101 }]);
    let maxQueued = 0;
    let maxInFlight = 0;
    const watch = () => {
      maxQueued = Math.max(maxQueued, g.handshakes.queued);
      maxInFlight = Math.max(maxInFlight, g.handshakes.pending - g.handshakes.queued);
    };
    g.handshakes.on('admitted', watch);
    g.handshakes.on('released', watch);
    try {
      // Waves of 10 (8 streams, 2 REST), each at once: under the pending cap of 12, which is not what this test
      // exercises (the next one does), but 5 times as many as may be in flight.
      const clients: StreamClient[] = [];
      const bodies: Array<Promise<number>> = [];
      for (let wave = 0; wave < 5; wave++) {
        const these = Array.from({ length: 8 }, () => new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=51' }));
        streams.push(...these);
        clients.push(...these);
        const rest = Array.from({ length: 2 }, async () => {
          const c = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
          try {
            const r = await c.get('/cityxchange/latest');
            expect(r.status).toBe(200);
            return r.json<Array<{ slu_id: number; v1: number }>>().find((x) => x.slu_id === 51)?.v1 ?? -1;
          } finally {
            c.close();
          }
        });
        bodies.push(...rest);
        await Promise.all(these.map((c) => c.opened));
      }
      expect(await Promise.all(bodies)).toEqual(Array(10).fill(5101));
      await insertReadings(db.pool, [{ slu_id: 51, v1: 5102 }]);
      await Promise.all(clients.map((c) => c.until(() => c.readings.some((r) => r.v1 === 5102), 'the new reading')));
    } finally {
      g.handshakes.off('admitted', watch);
      g.handshakes.off('released', watch);
    }
    expect(maxQueued).toBeGreaterThan(0); // they did wait
    expect(maxInFlight).toBeLessThanOrEqual(IN_FLIGHT);
    await until(g.handshakes, () => g.handshakes.pending === 0 && g.handshakes.queued === 0, 'all through');
  });

  it('the queue is bounded by MAX_PENDING_HANDSHAKES: beyond, connections are reset and counted; a client queued behind silent ones gets in once they go', async () => {
    const g = paced;
    const refusedBefore = await metric(g, 'sluice_connections_refused_total{reason="pending_handshakes"}');
    const held = [];
    for (let i = 0; i < PENDING - 1; i++) held.push(await silent(g.port));
    await until(g.handshakes, () => g.handshakes.pending === PENDING - 1, `${PENDING - 1} pending`);
    expect(g.handshakes.queued).toBe(PENDING - 1 - IN_FLIGHT);

    // A real partner takes the last place, in the queue behind the silent ones; its ClientHello waits there.
    const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const answer = rest.get('/cityxchange/latest');
    await until(g.handshakes, () => g.handshakes.pending === PENDING, `${PENDING} pending`);
    expect(g.handshakes.queued).toBe(PENDING - IN_FLIGHT);
    const over = await Promise.all([silent(g.port, '127.0.0.4'), silent(g.port, '127.0.0.5')]);
    await Promise.all(over.map((p) => p.closed));
    expect(over.map((p) => p.ended)).toEqual(['reset', 'reset']);
    expect((await metric(g, 'sluice_connections_refused_total{reason="pending_handshakes"}')) - refusedBefore).toBe(2);
    expect((await (await fetch(`http://127.0.0.1:${g.opsPort}/readyz`)).json()).pendingHandshakes).toBe(PENDING);
    expect(await metric(g, 'sluice_tls_pending_handshakes')).toBe(PENDING);

    // The silent ones go; the partner's kept ClientHello is handed to the TLS server and it is served.
    for (const p of held) p.socket.destroy();
    try {
      expect((await answer).status).toBe(200);
    } finally {
      rest.close();
    }
    await until(g.handshakes, () => g.handshakes.pending === 0 && g.handshakes.queued === 0 && g.handshakes.addresses === 0, 'all released');
  });

  it('a connection that closes while queued (FIN or reset) leaves no trace', async () => {
    const g = paced;
    const first = [await silent(g.port), await silent(g.port)]; // in flight
    const queued = [await silent(g.port, '127.0.0.3'), await silent(g.port, '127.0.0.3'), await silent(g.port, '127.0.0.3')];
    await until(g.handshakes, () => g.handshakes.pending === 5, '5 pending');
    expect(g.handshakes.queued).toBe(3);
    expect(g.handshakes.pendingFrom('127.0.0.3')).toBe(3);
    queued[0]?.socket.end();
    queued[1]?.socket.resetAndDestroy();
    queued[2]?.socket.destroy();
    await until(g.handshakes, () => g.handshakes.pending === 2, 'the queued ones dropped');
    expect(g.handshakes.queued).toBe(0);
    expect(g.handshakes.pendingFrom('127.0.0.3')).toBe(0);
    expect(g.handshakes.addresses).toBe(1);
    for (const p of first) p.socket.destroy();
    await until(g.handshakes, () => g.handshakes.pending === 0 && g.handshakes.addresses === 0, 'nothing left');
    // And the gateway still serves.
    const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    try {
      expect((await rest.get('/cityxchange/latest')).status).toBe(200);
    } finally {
      rest.close();
    }
  });

  it(`a queued connection times out TLS_HANDSHAKE_TIMEOUT_MS (${QUICK_TIMEOUT_MS} ms) after its TCP connection, counted once`, async () => {
    const g = quick;
    const before = await metric(g, 'sluice_tls_handshake_timeouts_total');
    const t0 = performance.now();
    const ps = [await silent(g.port), await silent(g.port), await silent(g.port)];
    await until(g.handshakes, () => g.handshakes.pending === 3, '3 pending');
    expect(g.handshakes.queued).toBe(2); // one in flight, two waiting
    await Promise.all(ps.map((p) => p.closed));
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(QUICK_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(QUICK_TIMEOUT_MS + 3000); // not one timeout after another
    expect(ps.map((p) => p.ended)).toEqual(['fin', 'fin', 'fin']);
    expect((await metric(g, 'sluice_tls_handshake_timeouts_total')) - before).toBe(3);
    expect(g.handshakes.pending).toBe(0);
    expect(g.handshakes.queued).toBe(0);
  });

  it('closing the gateway does not wait for queued connections', async () => {
    const g = paced;
    const ps = [await silent(g.port), await silent(g.port), await silent(g.port), await silent(g.port)];
    await until(g.handshakes, () => g.handshakes.pending === 4, '4 pending');
    expect(g.handshakes.queued).toBe(2);
    const t0 = performance.now();
    await g.close(); // the handshake timeout is 30 s
    expect(performance.now() - t0).toBeLessThan(10_000);
    await Promise.all(ps.map((p) => p.closed));
    expect(g.handshakes.pending).toBe(0);
    expect(g.handshakes.queued).toBe(0);
  });
});
