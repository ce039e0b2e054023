import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess } from '../../src/loadtest/gateway-process.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// WORKERS=2: one port, two gateway processes (node:cluster), a primary that serves /readyz and /metrics for both.
let db: TestDatabase;
let pki: TestPki;
let partner: CertAndKey;
type Proc = Awaited<ReturnType<typeof startGatewayProcess>>;
let gw: Proc;

interface WorkerHealth {
  pid: number;
  ready: boolean;
  streamClients: number;
}
interface ClusterHealth {
  ready: boolean;
  workers: { expected: number; answering: number; ready: number };
  streamClients: number;
  perWorker: WorkerHealth[];
}
async function readyz(): Promise<{ status: number; body: ClusterHealth }> {
  const r = await fetch(`http://127.0.0.1:${gw.opsPort}/readyz`);
  return { status: r.status, body: (await r.json()) as ClusterHealth };
}
async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A client that resumes with its cursor whenever its connection dies (on the same port: any worker). */
class ResumingClient {
  readonly v1s: number[] = [];
  cursor: string | undefined;
  current: StreamClient;
  reconnects = 0;
  constructor(readonly query: string) {
    this.current = this.open();
  }
  private open(): StreamClient {
    const q = this.cursor ? `${this.query}&since=${encodeURIComponent(this.cursor)}` : this.query;
    const c = new StreamClient(gw.port, { ca: pki.ca.certPem, client: partner, query: q });
    c.ws.on('message', () => {
      const f = c.frames[c.frames.length - 1];
      if (f?.type === 'readings') for (const r of f.readings as Array<{ v1: number }>) this.v1s.push(r.v1);
      if (typeof f?.cursor === 'string') this.cursor = f.cursor;
    });
    c.ws.on('close', () => {
      if (this.closing) return;
      this.reconnects++;
      setTimeout(() => (this.current = this.open()), 100);
    });
    return c;
  }
  closing = false;
  async close(): Promise<void> {
    this.closing = true;
    await this.current.close();
  }
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme');
  gw = await startGatewayProcess(db.url, pki.dir, { LOG_LEVEL: 'warn', WORKERS: '2' }, { grantAll: ['acme'] });
  await until(async () => (await readyz()).status === 200, 'both workers ready');
}, 60_000);
afterAll(async () => {
  await gw?.stop().catch(() => undefined);
  await db?.drop();
  await pki?.close();
});

describe('WORKERS=2', () => {
  it('spreads clients over both workers; each client gets every reading exactly once; /metrics adds the workers up', async () => {
    const clients = Array.from({ length: 8 }, (_, i) => new StreamClient(gw.port, { ca: pki.ca.certPem, client: partner, query: i % 2 ? 'slu_id=1' : '' }));
    await Promise.all(clients.map((c) => c.next('subscribed', 0)));
    const h = (await readyz()).body;
    expect(h.workers).toEqual({ expected: 2, answering: 2, ready: 2 });
    expect(h.streamClients).toBe(8);
    expect(h.perWorker.every((w) => w.streamClients > 0)).toBe(true); // both workers serve some
    const metrics = await (await fetch(`http://127.0.0.1:${gw.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_stream_clients\{partner="acme"\} 8$/m);
    expect(metrics.match(/^sluice_worker_stream_clients\{worker="\d+"\} \d+$/gm)).toHaveLength(2);

    const rows = Array.from({ length: 60 }, (_, i) => ({ slu_id: 1 + (i % 3), v1: 1000 + i }));
    for (let i = 0; i < rows.length; i += 6) await insertReadings(db.pool, rows.slice(i, i + 6));
    for (const [i, c] of clients.entries()) {
      const want = rows.filter((r) => i % 2 === 0 || r.slu_id === 1).map((r) => r.v1);
      await c.until(() => c.readings.length >= want.length, `client ${i}'s readings`);
      expect(c.readings.map((r) => r.v1)).toEqual(want);
    }
    await Promise.all(clients.map((c) => c.close()));
  }, 60_000);

  it('a worker killed under load is replaced; its clients resume on the other with nothing lost or repeated', async () => {
    const clients = Array.from({ length: 6 }, (_, i) => new ResumingClient(i % 2 ? 'slu_id=1,2' : ''));
    await Promise.all(clients.map((c) => c.current.next('subscribed', 0)));
    await until(async () => (await readyz()).body.streamClients === 6, 'six clients');
    const victim = (await readyz()).body.perWorker.find((w) => w.streamClients > 0) as WorkerHealth;

    let v = 1;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const batch = Array.from({ length: 3 }, (_, i) => ({ slu_id: 1 + ((v + i) % 4), v1: 100_000 + v + i }));
        v += 3;
        await insertReadings(db.pool, batch);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    process.kill(victim.pid, 'SIGKILL');
    await until(async () => (await readyz()).status === 503, '/readyz to say a worker is missing', 5000);
    await until(async () => {
      const h = await readyz();
      return h.status === 200 && !h.body.perWorker.some((w) => w.pid === victim.pid);
    }, 'a replacement worker');
    await new Promise((r) => setTimeout(r, 500));
    writing = false;
    await writer;

    const committed = (await db.pool.query<{ slu_id: number; v1: number }>('select slu_id, v1 from slu_reading where v1 >= 100000 order by id')).rows;
    for (const [i, c] of clients.entries()) {
      const want = committed.filter((r) => i % 2 === 0 || r.slu_id === 1 || r.slu_id === 2).map((r) => r.v1).sort((x, y) => x - y);
      await until(() => c.v1s.filter((x) => x >= 100_000).length >= want.length, `client ${i} to catch up`);
      const got = c.v1s.filter((x) => x >= 100_000);
      expect(new Set(got).size, `client ${i}: no duplicates`).toBe(got.length);
      expect([...got].sort((x, y) => x - y), `client ${i}: nothing lost`).toEqual(want);
    }
    expect(clients.some((c) => c.reconnects > 0)).toBe(true); // the victim had clients, and they resumed
    await Promise.all(clients.map((c) => c.close()));
  }, 90_000);

  it('SIGTERM drains every worker: clients get 1012, the process exits 0', async () => {
    const clients = Array.from({ length: 4 }, () => new StreamClient(gw.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=1' }));
    await Promise.all(clients.map((c) => c.next('subscribed', 0)));
    expect((await readyz()).body.perWorker.every((w) => w.streamClients > 0)).toBe(true);
    const exited = new Promise<number | null>((r) => gw.process.once('exit', (code) => r(code)));
    gw.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const c of clients) {
      await c.until(() => c.closeCode !== undefined, 'the close frame');
      expect(c.closeCode).toBe(1012);
    }
  }, 60_000);
});
