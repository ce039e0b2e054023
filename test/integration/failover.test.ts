import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess } from '../../src/loadtest/gateway-process.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Real processes: two gateways on one database; the first is killed with SIGKILL under load (no close frames,
// no drain), and every client resumes on the second with its last cursor.
let db: TestDatabase;
let pki: TestPki;
let partner: CertAndKey;
type Proc = Awaited<ReturnType<typeof startGatewayProcess>>;
const procs: Proc[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme');
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop().catch(() => undefined)));
  await db?.drop();
  await pki?.close();
});

/** A client that follows its cursor to another gateway when its connection dies, like the client library does. */
class ResumingClient {
  readonly v1s: number[] = [];
  cursor: string | undefined;
  private current: StreamClient;
  reconnects = 0;
  constructor(
    private port: number,
    readonly query: string,
  ) {
    this.current = this.open();
  }
  private open(): StreamClient {
    const q = this.cursor ? `${this.query}&since=${encodeURIComponent(this.cursor)}` : this.query;
    const c = new StreamClient(this.port, { ca: pki.ca.certPem, client: partner, query: q });
    c.ws.on('message', () => {
      // StreamClient has parsed the frame already; keep our own copy of readings and the cursor.
      const f = c.frames[c.frames.length - 1];
      if (f?.type === 'readings') for (const r of f.readings as Array<{ v1: number }>) this.v1s.push(r.v1);
      if (typeof f?.cursor === 'string') this.cursor = f.cursor;
    });
    return c;
  }
  async ready(): Promise<void> {
    await this.current.next('subscribed', 0);
  }
  moveTo(port: number): void {
    this.port = port;
    this.reconnects++;
    this.current = this.open();
  }
  get dead(): boolean {
    return this.current.closeCode !== undefined;
  }
  close(): Promise<void> {
    return this.current.close();
  }
}

describe('gateway killed with SIGKILL under load', () => {
  it('clients resume on a second process with their cursors and end with every reading exactly once', async () => {
    const [a, b] = await Promise.all([
      startGatewayProcess(db.url, pki.dir, { LOG_LEVEL: 'warn' }, { grantAll: ['acme'] }),
      startGatewayProcess(db.url, pki.dir, { LOG_LEVEL: 'warn' }, { grantAll: ['acme'] }),
    ]);
    procs.push(a, b);
    const clients = [new ResumingClient(a.port, 'slu_id=1'), new ResumingClient(a.port, 'slu_id=2,3'), new ResumingClient(a.port, '')];
    await Promise.all(clients.map((c) => c.ready()));

    let v = 1;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const batch = Array.from({ length: 3 }, (_, i) => ({ slu_id: 1 + ((v + i) % 4), v1: v + i }));
        v += 3;
        await insertReadings(db.pool, batch);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 700));
    a.process.kill('SIGKILL');
    // Each client notices its connection died and resumes on b with its last cursor.
    for (const c of clients) {
      const t0 = Date.now();
      while (!c.dead && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      expect(c.dead).toBe(true);
      c.moveTo(b.port);
    }
    await new Promise((r) => setTimeout(r, 700));
    writing = false;
    await writer;

    const committed = (await db.pool.query<{ slu_id: number; v1: number }>('select slu_id, v1 from slu_reading order by id')).rows;
    const want = (slus: number[] | null) => committed.filter((r) => slus === null || slus.includes(r.slu_id)).map((r) => r.v1).sort((x, y) => x - y);
    const expected = [want([1]), want([2, 3]), want(null)];
    expect(expected[2]?.length).toBeGreaterThan(100);
    for (let i = 0; i < clients.length; i++) {
      const c = clients[i] as ResumingClient;
      const t0 = Date.now();
      while (c.v1s.length < (expected[i]?.length ?? 0) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
      expect(new Set(c.v1s).size).toBe(c.v1s.length); // no duplicates
      expect([...c.v1s].sort((x, y) => x - y)).toEqual(expected[i]); // nothing lost
      expect(c.reconnects).toBe(1);
    }
    await Promise.all(clients.map((c) => c.close()));

    // SIGTERM on the survivor: clients are told to reconnect elsewhere (1012), and the process exits 0 promptly.
    const last = new StreamClient(b.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=1' });
    await last.next('subscribed', 0);
    const exited = new Promise<number | null>((r) => b.process.once('exit', (code) => r(code)));
    const t0 = Date.now();
    b.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await last.until(() => last.closeCode !== undefined, 'the close frame');
    expect(last.closeCode).toBe(1012);
    expect(last.closeReason).toContain('SLUICE_ERR_GOING_AWAY');
  }, 60_000);
});
