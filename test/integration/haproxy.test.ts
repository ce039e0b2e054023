import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { SluiceClient } from '../../src/client/sluice-client.ts';
import { freePort, startGatewayProcess } from '../../src/loadtest/gateway-process.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { deployFile, findExecutable } from '../setup/deploy-files.ts';
import { haproxyConfigForTest, startHaproxy, type RunningHaproxy } from '../setup/haproxy.ts';
import { httpsClient, upgradeRequest } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';

// Two real gateway processes on one database behind a real HAProxy running deploy/haproxy.cfg (only addresses
// and privileges replaced, see test/setup/haproxy.ts). TLS passes through HAProxy to the gateways, so partner
// identity (the client certificate) still works; partners follow the stream with the client library, through
// HAProxy only. One gateway is killed with SIGKILL, comes back, then the other is drained in HAProxy and stopped
// with SIGTERM: every client must end with every reading written exactly once, as the table holds them.
const HAPROXY = findExecutable('haproxy');
if (!HAPROXY) console.warn('haproxy test skipped: haproxy not found: apt-get install haproxy');

type GatewayProcess = Awaited<ReturnType<typeof startGatewayProcess>>;
const GATEWAY_ENV = { LOG_LEVEL: 'warn', WS_PROGRESS_MS: '1000' };

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let stranger: CertAndKey;
let foreign: CertAndKey;
let haproxy: RunningHaproxy | undefined;
const gateways: GatewayProcess[] = [];
const followers: Follower[] = [];

/** A partner application: the client library through HAProxy, recording what it got and how it (re)connected. */
class Follower {
  readonly v1s: number[] = [];
  readonly connects: Array<{ resumed: boolean }> = [];
  readonly disconnects: Array<{ code: number; reason: string }> = [];
  readonly errors: Error[] = [];
  readonly client: SluiceClient;
  private readonly reading: Promise<void>;

  constructor(
    port: number,
    readonly sluIds: readonly number[] | undefined,
  ) {
    const client = new SluiceClient({
      url: `https://127.0.0.1:${port}/cityxchange`, cert: acme.certPem, key: acme.keyPem, ca: pki.ca.certPem, retryBaseMs: 50, retryCapMs: 500,
      ...(sluIds ? { sluIds } : {}),
    });
    this.client = client;
    client.on('connected', (c) => this.connects.push(c));
    client.on('disconnected', (d) => this.disconnects.push({ code: d.code, reason: d.reason }));
    client.on('error', (e) => this.errors.push(e));
    this.reading = (async () => {
      for await (const r of client.readings()) this.v1s.push(r.v1 as number);
    })();
  }

  async close(): Promise<void> {
    this.client.close();
    await this.reading.catch(() => undefined);
  }
}

async function until(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Stream clients a gateway holds, from its own /readyz (answered while it runs, refused once it is gone). */
async function streamClients(g: GatewayProcess): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${g.opsPort}/readyz`).catch(() => undefined);
  return res ? ((await res.json()) as { streamClients: number }).streamClients : -1;
}

beforeAll(async () => {
  if (!HAPROXY) return;
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [acme, stranger, foreign] = await Promise.all([pki.client('acme'), pki.client('stranger'), pki.foreignClient('acme')]);
  gateways.push(...(await Promise.all([0, 1].map(() => startGatewayProcess(db.url, pki.dir, GATEWAY_ENV, { grantAll: ['acme'] })))));
  const committed = await readFile(deployFile('haproxy.cfg'), 'utf8');
  const port = await freePort();
  const backends = gateways.map((g, i) => ({ name: `gw${i + 1}`, port: g.port, opsPort: g.opsPort }));
  haproxy = await startHaproxy(HAPROXY, ({ statsSocket }) => ({ port, text: haproxyConfigForTest(committed, { port, backends, statsSocket }) }));
  await Promise.all(backends.map((b) => haproxy?.waitFor(b.name, 'UP')));
});

afterAll(async () => {
  await Promise.all(followers.map((f) => f.close()));
  await haproxy?.stop();
  await Promise.all(gateways.map((g) => g.stop().catch(() => undefined)));
  await db?.drop();
  await pki?.close();
});

function showHaproxyOnFailure(): void {
  onTestFailed(() => console.error(`haproxy output (last 80 lines):\n${haproxy?.output.slice(-80).join('\n')}`));
}

describe.skipIf(!HAPROXY)('gateways behind HAProxy (deploy/haproxy.cfg, TCP passthrough)', () => {
  it('passes TLS through: the gateway sees the client certificate and decides by it', async () => {
    showHaproxyOnFailure();
    const port = (haproxy as RunningHaproxy).port;
    await insertReadings(db.pool, [{ slu_id: 1, v1: 0 }]);
    const rest = httpsClient({ port, ca: pki.ca.certPem, client: acme });
    try {
      const latest = await rest.get('/cityxchange/latest');
      expect(latest.status).toBe(200);
      expect(latest.json<Array<{ slu_id: number; v1: number }>>()).toEqual([expect.objectContaining({ slu_id: 1, v1: 0 })]);
    } finally {
      rest.close();
    }
    // A valid certificate of a partner without grants: the gateway names it, so its CN came through HAProxy.
    const denied = httpsClient({ port, ca: pki.ca.certPem, client: stranger });
    try {
      const r = await denied.get('/cityxchange/latest');
      expect(r.status).toBe(403);
      expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_NO_GRANTS', message: expect.stringContaining('"stranger"') });
    } finally {
      denied.close();
    }
    const upgrade = await upgradeRequest({ port, ca: pki.ca.certPem, client: stranger });
    expect(upgrade.status).toBe(403);
    expect(upgrade.body).toContain('SLUICE_ERR_NO_GRANTS');
    // Another CA's certificate, and none at all: refused in the gateway's TLS handshake, as without HAProxy.
    const other = httpsClient({ port, ca: pki.ca.certPem, client: foreign });
    await expect(other.get('/cityxchange/latest')).rejects.toThrow();
    other.close();
    const anonymous = httpsClient({ port, ca: pki.ca.certPem });
    await expect(anonymous.get('/cityxchange/latest')).rejects.toThrow();
    anonymous.close();
  });

  it('clients resume through HAProxy when a gateway is killed and when one is drained: every reading exactly once', async () => {
    showHaproxyOnFailure();
    const lb = haproxy as RunningHaproxy;
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const subscriptions: Array<number[] | undefined> = [[1], [2, 3], undefined, undefined];
    followers.push(...subscriptions.map((s) => new Follower(lb.port, s)));
    await until(() => followers.every((f) => f.connects.length === 1), 'every client connected');
    // leastconn put two streams on each gateway.
    expect([await streamClients(a), await streamClients(b)]).toEqual([2, 2]);

    let v = 1;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await insertReadings(db.pool, Array.from({ length: 3 }, (_, i) => ({ slu_id: 1 + ((v + i) % 4), v1: v + i })));
        v += 3;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const receivedSome = () => followers.every((f) => f.v1s.length > 10);
    await until(receivedSome, 'readings on every client');

    // 1. SIGKILL: no close frames; the kernel resets the connections, HAProxy closes the clients' side, and
    //    each client of the dead gateway reconnects through HAProxy with its cursor. HAProxy has not seen the
    //    failed health check yet, but its refused connection is redispatched to the other gateway at once: one
    //    disconnect and one successful resume per moved client, no failed attempt in between.
    a.process.kill('SIGKILL');
    await until(async () => (await streamClients(b)) === 4, 'all four streams on the surviving gateway');
    const moved = followers.filter((f) => f.connects.length === 2);
    expect(moved).toHaveLength(2);
    for (const f of moved) {
      expect(f.connects).toEqual([{ resumed: false }, { resumed: true }]);
      expect(f.disconnects).toHaveLength(1);
    }
    await lb.waitFor('gw1', 'DOWN');

    // The killed gateway comes back where HAProxy expects it; its health check brings it back in.
    const a2 = await startGatewayProcess(db.url, pki.dir, GATEWAY_ENV, { grantAll: ['acme'], port: a.port, opsPort: a.opsPort });
    gateways.push(a2);
    await lb.waitFor('gw1', 'UP');
    const before = followers.map((f) => [f.connects.length, f.disconnects.length]);

    // 2. A planned stop: drained in HAProxy first (no new connections), then SIGTERM. Its streams are closed
    //    with 1012 and resume on the other gateway at the first attempt; the process exits 0.
    await lb.runtime('set server sluice_gateways/gw2 state drain');
    await lb.waitFor('gw2', 'DRAIN');
    const exited = new Promise<number | null>((r) => b.process.once('exit', (code) => r(code)));
    b.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until(async () => (await streamClients(a2)) === 4, 'all four streams on the restarted gateway');
    await until(() => followers.every((f, i) => f.connects.length === (before[i]?.[0] ?? 0) + 1), 'every client resumed');
    for (const [i, f] of followers.entries()) {
      expect(f.disconnects.slice(before[i]?.[1])).toEqual([{ code: 1012, reason: expect.stringContaining('SLUICE_ERR_GOING_AWAY') }]);
      expect(f.connects.at(-1)).toEqual({ resumed: true });
    }

    const settled = followers.map((f) => f.v1s.length);
    await until(() => followers.every((f, i) => f.v1s.length > (settled[i] ?? 0) + 10), 'readings after the second failover');
    writing = false;
    await writer;

    // Against the table: each client has exactly the readings of its SLUs, each once.
    const committed = (await db.pool.query<{ slu_id: number; v1: number }>('select slu_id, v1 from slu_reading where v1 > 0 order by id')).rows;
    const want = (slus: readonly number[] | undefined) => committed.filter((r) => !slus || slus.includes(r.slu_id)).map((r) => r.v1).sort((x, y) => x - y);
    expect(committed.length).toBeGreaterThan(200);
    for (const f of followers) {
      const expected = want(f.sluIds);
      await until(() => f.v1s.length >= expected.length, `client ${JSON.stringify(f.sluIds ?? 'all')} to receive ${expected.length} readings (has ${f.v1s.length})`);
      await new Promise((r) => setTimeout(r, 100)); // a duplicate would arrive after the last expected reading
      expect(new Set(f.v1s).size).toBe(f.v1s.length); // no duplicates
      expect([...f.v1s].filter((x) => x > 0).sort((x, y) => x - y)).toEqual(expected); // nothing lost
      expect(f.errors).toEqual([]);
    }

    // REST through HAProxy after all this: /latest is the newest reading of every SLU, as the table says.
    const rest = httpsClient({ port: lb.port, ca: pki.ca.certPem, client: acme });
    try {
      const latest = await rest.get('/cityxchange/latest');
      expect(latest.status).toBe(200);
      const newest = (await db.pool.query<{ slu_id: number; v1: number }>('select distinct on (slu_id) slu_id, v1 from slu_reading order by slu_id, t desc, id desc')).rows;
      expect(latest.json<Array<{ slu_id: number; v1: number }>>().map((r) => ({ slu_id: r.slu_id, v1: r.v1 }))).toEqual(newest);
    } finally {
      rest.close();
    }
  }, 120_000);
});
