import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import type { HandshakeGuard } from '../../src/tls/handshake-guard.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway, type LogLines } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Two gateways on one database. `guarded` is the one from the finding: MAX_CONNECTIONS=30, and a handshake
// timeout long enough that nothing in these tests times out, so an idle flood stays in place while we look.
// `quick` has a 500 ms handshake timeout to time, and room for only 3 connections.
const PER_ADDRESS = 5;
const GLOBAL = 12;
const QUICK_TIMEOUT_MS = 500;

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let guarded: { gateway: Gateway; logs: LogLines };
let quick: { gateway: Gateway; logs: LogLines };
const probes: Probe[] = [];
const streams: StreamClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  guarded = await startTestGateway(db.url, pki, {
    MAX_CONNECTIONS: '30',
    MAX_PENDING_HANDSHAKES: String(GLOBAL),
    MAX_PENDING_HANDSHAKES_PER_ADDRESS: String(PER_ADDRESS),
    TLS_HANDSHAKE_TIMEOUT_MS: '30000',
  });
  quick = await startTestGateway(db.url, pki, { TLS_HANDSHAKE_TIMEOUT_MS: String(QUICK_TIMEOUT_MS), MAX_CONNECTIONS: '3' });
});
afterEach(async () => {
  // Every test ends its flood; the next starts from nothing pending.
  for (const p of probes.splice(0)) p.socket.destroy();
  await Promise.all(streams.splice(0).map((s) => s.close()));
  for (const g of [guarded, quick]) if (g) await until(g.gateway.handshakes, () => g.gateway.handshakes.pending === 0, 'no pending handshakes');
});
afterAll(async () => {
  await guarded?.gateway.close();
  await quick?.gateway.close();
  await db?.drop();
  await pki?.close();
});

/** A plain TCP connection (what a flood holds open) and how it ended. */
interface Probe {
  readonly socket: net.Socket;
  readonly openedAt: number;
  /** 'fin': the server closed it; 'reset': the server reset it; 'error': anything else. */
  ended: 'fin' | 'reset' | 'error' | undefined;
  endedAt: number;
  bytesIn: number;
  readonly closed: Promise<void>;
}

/** Opens a TCP connection from `localAddress` (any of 127/8 reaches lo on Linux); resolves once connected or closed. */
async function connectFrom(port: number, localAddress: string): Promise<Probe> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  const probe: Probe = {
    socket, openedAt: 0, ended: undefined, endedAt: 0, bytesIn: 0,
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
  const end = (how: 'fin' | 'reset' | 'error') => {
    if (probe.ended) return;
    probe.ended = how;
    probe.endedAt = performance.now();
  };
  socket.on('data', (d: Buffer) => (probe.bytesIn += d.length));
  socket.on('end', () => end('fin'));
  socket.on('error', (err: NodeJS.ErrnoException) => end(err.code === 'ECONNRESET' ? 'reset' : 'error'));
  probes.push(probe);
  await new Promise<void>((resolve) => {
    socket.once('connect', () => {
      (probe as { openedAt: number }).openedAt = performance.now();
      resolve();
    });
    socket.once('close', () => resolve());
  });
  return probe;
}

async function flood(port: number, localAddress: string, n: number): Promise<Probe[]> {
  return Promise.all(Array.from({ length: n }, () => connectFrom(port, localAddress)));
}

/** Resolves once `n` of `probes` have closed. */
function closedCount(ps: readonly Probe[], n: number, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let closed = 0;
    const timer = setTimeout(() => reject(new Error(`only ${closed} of ${ps.length} connections closed, expected ${n}`)), timeoutMs);
    for (const p of ps) {
      void p.closed.then(() => {
        if (++closed === n) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
}

/** Waits, on the guard's events, until `pred` holds. */
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
      reject(new Error(`timed out waiting for ${what} (pending ${guard.pending} from ${guard.addresses} addresses)`));
    }, timeoutMs);
    for (const e of events) guard.on(e, check);
    check();
  });
}

/** Polls the log (it has no events) until `pred` holds. */
async function logsUntil(logs: LogLines, pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(g: Gateway, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${g.opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const refusedSeries = (reason: string) => `sluice_connections_refused_total{reason="${reason}"}`;

/** The first bytes a real TLS client sends: a ClientHello, captured from a listener that never answers. */
async function clientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<Buffer>((resolve) => {
      server.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy())));
      tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: 'localhost', ca: pki.ca.certPem, cert: acme.certPem, key: acme.keyPem }).on('error', () => undefined);
    });
  } finally {
    server.close();
  }
}

describe('connections that never finish a TLS handshake', () => {
  it('an idle flood of 40 from one address (MAX_CONNECTIONS=30) does not lock a partner out of REST or the stream', async () => {
    const g = guarded.gateway;
    const refusedBefore = await metric(g, refusedSeries('pending_handshakes_per_address'));
    const logsFrom = guarded.logs.length;
    const t0 = Date.now();

    const attack = await flood(g.port, '127.0.0.2', 40);
    // All but PER_ADDRESS are reset at once (not after a timeout), before the server spends a handshake on them.
    await closedCount(attack, 40 - PER_ADDRESS);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(attack.filter((p) => p.ended === 'reset')).toHaveLength(40 - PER_ADDRESS);
    const held = attack.filter((p) => p.ended === undefined);
    expect(held).toHaveLength(PER_ADDRESS);
    await until(g.handshakes, () => g.handshakes.pending === PER_ADDRESS, `${PER_ADDRESS} pending`);
    expect(g.handshakes.pendingFrom('127.0.0.2')).toBe(PER_ADDRESS);

    // Meanwhile a partner from 127.0.0.1 completes mTLS, reads /latest and streams.
    await insertReadings(db.pool, [{ slu_id: 41, v1: 4101 }]);
    const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    try {
      const latest = await rest.get('/cityxchange/latest');
      expect(latest.status).toBe(200);
      expect(latest.json<Array<{ slu_id: number; v1: number }>>()).toContainEqual(expect.objectContaining({ slu_id: 41, v1: 4101 }));
    } finally {
      rest.close();
    }
    const stream = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=41' });
    streams.push(stream);
    await stream.opened;
    await insertReadings(db.pool, [{ slu_id: 41, v1: 4102 }]);
    await stream.until(() => stream.readings.some((r) => r.v1 === 4102), 'the new reading on the stream');

    // The flood was held open all along: the partner got in beside it, not after it.
    expect(held.every((p) => p.ended === undefined && !p.socket.destroyed)).toBe(true);
    expect(g.handshakes.pending).toBe(PER_ADDRESS); // the partner's handshakes were counted and released
    expect((await (await fetch(`http://127.0.0.1:${g.opsPort}/readyz`)).json()).pendingHandshakes).toBe(PER_ADDRESS);
    expect(await metric(g, 'sluice_tls_pending_handshakes')).toBe(PER_ADDRESS);
    expect((await metric(g, refusedSeries('pending_handshakes_per_address'))) - refusedBefore).toBe(40 - PER_ADDRESS);

    // 35 refusals, but not 35 log lines: the first at once, then a summary at most once a second.
    const lines = () => guarded.logs.slice(logsFrom).filter((l) => l.msg === 'refused new connections: too many pending TLS handshakes or connections');
    const counted = () => lines().reduce((n, l) => n + ((l.refused as Record<string, number>).pending_handshakes_per_address ?? 0), 0);
    await logsUntil(guarded.logs, () => counted() === 40 - PER_ADDRESS, 'all refusals in the log');
    expect(lines().length).toBeLessThanOrEqual(3);
    expect(lines()[0]).toMatchObject({ level: 40, firstAddress: '127.0.0.2', maxPendingPerAddress: PER_ADDRESS });
    const times = lines().map((l) => l.time as number);
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(990);
  });

  it('caps pending handshakes in all: beyond MAX_PENDING_HANDSHAKES new connections from anywhere are reset; established partners carry on', async () => {
    const g = guarded.gateway;
    const before = await metric(g, refusedSeries('pending_handshakes'));
    const beforePerAddress = await metric(g, refusedSeries('pending_handshakes_per_address'));
    // A partner connected before the flood: a keep-alive REST connection and a stream.
    const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const stream = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=42' });
    streams.push(stream);
    try {
      expect((await rest.get('/cityxchange/rows?slu_id=42&cnt=1')).status).toBe(200);
      await stream.opened;

      // 5 + 5 from two addresses, then 5 more from a third of which only 2 fit under the global cap of 12.
      const a = await flood(g.port, '127.0.0.2', PER_ADDRESS);
      const b = await flood(g.port, '127.0.0.3', PER_ADDRESS);
      await until(g.handshakes, () => g.handshakes.pending === 2 * PER_ADDRESS, '10 pending');
      const c = await flood(g.port, '127.0.0.4', PER_ADDRESS);
      await closedCount(c, PER_ADDRESS - 2);
      await until(g.handshakes, () => g.handshakes.pending === GLOBAL, `${GLOBAL} pending`);
      expect(c.filter((p) => p.ended === 'reset')).toHaveLength(PER_ADDRESS - 2);
      expect(g.handshakes.pendingFrom('127.0.0.4')).toBe(2);
      expect([...a, ...b].every((p) => p.ended === undefined)).toBe(true);

      // A fresh address is refused too: the cap is global.
      const [fresh] = await flood(g.port, '127.0.0.5', 1);
      await fresh?.closed;
      expect(fresh?.ended).toBe('reset');
      expect((await metric(g, refusedSeries('pending_handshakes'))) - before).toBe(PER_ADDRESS - 2 + 1);
      expect((await metric(g, refusedSeries('pending_handshakes_per_address'))) - beforePerAddress).toBe(0);

      // What is already established does not go through the handshake again and is unaffected.
      const reading = await rest.get('/cityxchange/rows?slu_id=42&cnt=1');
      expect(reading.status).toBe(200);
      await insertReadings(db.pool, [{ slu_id: 42, v1: 4201 }]);
      await stream.until(() => stream.readings.some((r) => r.v1 === 4201), 'a reading while the cap is full');
      expect(g.handshakes.pending).toBe(GLOBAL);

      // Once the flood goes away the count is back to zero and new partners get in again.
      for (const p of [...a, ...b, ...c]) p.socket.destroy();
      await until(g.handshakes, () => g.handshakes.pending === 0, 'the flood released');
      const fresher = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
      try {
        const latest = await fresher.get('/cityxchange/rows?slu_id=42&cnt=1');
        expect(latest.status).toBe(200);
        expect(latest.json<{ data: Array<{ v1: number }> }>().data[0]?.v1).toBe(4201);
      } finally {
        fresher.close();
      }
    } finally {
      rest.close();
    }
  });

  it(`closes a connection that sends nothing, or a ClientHello a byte at a time, after TLS_HANDSHAKE_TIMEOUT_MS (${QUICK_TIMEOUT_MS} ms)`, async () => {
    const g = quick.gateway;
    // A certificate reload (setSecureContext) must not put Node's 120 s default back.
    expect(await g.reloadTls()).toBe(true);
    const timeoutsBefore = await metric(g, 'sluice_tls_handshake_timeouts_total');
    const logsFrom = quick.logs.length;
    const hello = await clientHello();
    expect(hello[0]).toBe(0x16); // a TLS handshake record
    expect(hello.length).toBeGreaterThan(100);

    const silent = await connectFrom(g.port, '127.0.0.2');
    const trickle = await connectFrom(g.port, '127.0.0.3');
    // The record header and the start of the ClientHello, then one more byte every 50 ms: the connection is
    // never idle, and the ClientHello never complete.
    trickle.socket.write(hello.subarray(0, 20));
    let sent = 20;
    const drip = setInterval(() => {
      if (sent < hello.length - 1 && !trickle.socket.destroyed) trickle.socket.write(hello.subarray(sent, ++sent));
    }, 50);
    try {
      await until(g.handshakes, () => g.handshakes.pending === 2, 'both pending');
      await closedCount([silent, trickle], 2, QUICK_TIMEOUT_MS + 3000);
    } finally {
      clearInterval(drip);
    }
    // Closed by the server: we never ended or reset either. (A byte of the trickle that arrives just before the
    // server closes, unread, turns its FIN into a reset.)
    expect(silent.ended).toBe('fin');
    expect(['fin', 'reset']).toContain(trickle.ended);
    for (const p of [silent, trickle]) {
      expect(p.bytesIn).toBe(0);
      const ms = p.endedAt - p.openedAt;
      expect(ms).toBeGreaterThanOrEqual(QUICK_TIMEOUT_MS - 50);
      expect(ms).toBeLessThan(QUICK_TIMEOUT_MS + 2000);
    }
    expect(sent).toBeGreaterThan(21); // it was still sending when it was cut off
    expect((await metric(g, 'sluice_tls_handshake_timeouts_total')) - timeoutsBefore).toBe(2);
    await until(g.handshakes, () => g.handshakes.pending === 0, 'released');
    await logsUntil(quick.logs, () => quick.logs.slice(logsFrom).reduce((n, l) => n + ((l.handshakeTimeouts as number | undefined) ?? 0), 0) === 2, 'the timeouts in the log');

    // A partner's handshake takes milliseconds: the short timeout does not get in its way.
    const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    try {
      expect((await rest.get('/cityxchange/latest')).status).toBe(200);
    } finally {
      rest.close();
    }
  });

  it('counts and logs the connections Node itself drops at MAX_CONNECTIONS, and warns when the cap cannot help', async () => {
    const g = quick.gateway;
    // MAX_PENDING_HANDSHAKES (default 1000) >= MAX_CONNECTIONS (3): said once, at start-up.
    expect(quick.logs.filter((l) => String(l.msg).startsWith('MAX_PENDING_HANDSHAKES is not below MAX_CONNECTIONS'))).toHaveLength(1);
    expect(guarded.logs.filter((l) => String(l.msg).startsWith('MAX_PENDING_HANDSHAKES is not below MAX_CONNECTIONS'))).toHaveLength(0);
    // MAX_CONNECTIONS counts every open connection: the previous test's REST connection may still be closing.
    for (const deadline = Date.now() + 5000; (await g.handshakes.connections()) > 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    expect(await g.handshakes.connections()).toBe(0);
    const dropsBefore = await metric(g, refusedSeries('max_connections'));
    const timeoutsBefore = await metric(g, 'sluice_tls_handshake_timeouts_total');
    const logsFrom = quick.logs.length;
    const three = until(g.handshakes, () => g.handshakes.pending === 3, '3 pending');
    const ps = await flood(g.port, '127.0.0.2', 5);
    await three;
    await closedCount(ps, 5, QUICK_TIMEOUT_MS + 3000); // 2 dropped at once, 3 after the handshake timeout
    expect((await metric(g, refusedSeries('max_connections'))) - dropsBefore).toBe(2);
    expect((await metric(g, 'sluice_tls_handshake_timeouts_total')) - timeoutsBefore).toBe(3);
    const logged = (key: string) => quick.logs.slice(logsFrom).reduce((n, l) => n + ((l.refused as Record<string, number> | undefined)?.[key] ?? 0), 0);
    await logsUntil(quick.logs, () => logged('max_connections') === 2, 'the drops in the log');
  });

  it('the pending count returns to 0 whichever way a handshake ends (no leak)', async () => {
    const g = guarded.gateway;
    const hello = await clientHello();
    const tlsAttempt = (opts: tls.ConnectionOptions, localAddress: string) =>
      new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: g.port, localAddress });
        const s = tls.connect({ socket, servername: 'localhost', ca: pki.ca.certPem, ...opts });
        s.on('secureConnect', () => s.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
        let data = '';
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('error', () => undefined);
        s.on('close', () => resolve(data.split('\r\n')[0] ?? ''));
      });

    const idle = await flood(g.port, '127.0.0.2', PER_ADDRESS);
    const partial = await flood(g.port, '127.0.0.3', 3);
    for (const p of partial) p.socket.write(hello.subarray(0, hello.length - 10));
    const [plainHttp] = await flood(g.port, '127.0.0.4', 1);
    plainHttp?.socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'); // not TLS at all: the server drops it
    await plainHttp?.closed;
    await until(g.handshakes, () => g.handshakes.pending === PER_ADDRESS + 3, 'idle and partial ones pending');
    expect(g.handshakes.addresses).toBe(2);
    expect(g.handshakes.pendingFrom('127.0.0.2')).toBe(PER_ADDRESS);
    expect(g.handshakes.pendingFrom('127.0.0.3')).toBe(3);
    const refused = await flood(g.port, '127.0.0.2', 2); // over the per-address cap
    await Promise.all(refused.map((p) => p.closed));
    expect(refused.every((p) => p.ended === 'reset')).toBe(true);

    // Handshakes that end in the TLS layer: no certificate, another CA's, and a good one.
    const mallory = await pki.foreignClient('mallory');
    const outcomes = await Promise.all([
      tlsAttempt({}, '127.0.0.5'),
      tlsAttempt({ cert: mallory.certPem, key: mallory.keyPem }, '127.0.0.5'),
      tlsAttempt({ cert: acme.certPem, key: acme.keyPem }, '127.0.0.6'),
    ]);
    expect(outcomes).toEqual(['', '', 'HTTP/1.1 200 OK']);

    // The client side goes away in every way it can: FIN, RST, FIN after a partial hello.
    idle[0]?.socket.end();
    idle[1]?.socket.resetAndDestroy();
    for (const p of idle.slice(2)) p.socket.destroy();
    for (const p of partial) p.socket.end();
    await until(g.handshakes, () => g.handshakes.pending === 0 && g.handshakes.addresses === 0, 'every count back to zero');
    expect((await (await fetch(`http://127.0.0.1:${g.opsPort}/readyz`)).json()).pendingHandshakes).toBe(0);
    expect(await metric(g, 'sluice_tls_pending_handshakes')).toBe(0);
    for (const a of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']) expect(g.handshakes.pendingFrom(a)).toBe(0);
  });

  // Last: it closes the `guarded` gateway.
  it('closing the gateway does not wait for handshakes in progress to time out', async () => {
    const g = guarded.gateway;
    const idle = await flood(g.port, '127.0.0.2', 3);
    await until(g.handshakes, () => g.handshakes.pending === 3, '3 pending');
    const t0 = performance.now();
    await g.close(); // its handshake timeout is 30 s
    expect(performance.now() - t0).toBeLessThan(10_000);
    await closedCount(idle, 3, 1000);
    expect(idle.every((p) => p.ended === 'fin')).toBe(true);
    expect(g.handshakes.pending).toBe(0);
  });
});
