// Regression test from the second outside review (an attacker's reproduction, kept so the finding stays fixed).
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGatewayProcess } from '../../../src/loadtest/gateway-process.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let partner: CertAndKey;
type Proc = Awaited<ReturnType<typeof startGatewayProcess>>;
const procs: Proc[] = [];
const clients: StreamClient[] = [];
const strays: number[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme');
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  for (const p of procs) await p.stop().catch(() => undefined);
  for (const pid of strays) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  await db?.drop().catch(() => undefined);
  await pki?.close();
});

/** Processes whose environment names this ops port: the primary and every worker it forked. */
function processesOf(opsPort: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'latin1');
      if (env.split('\0').includes(`OPS_PORT=${opsPort}`)) out.push(Number(d));
    } catch { /* gone or not ours */ }
  }
  return out;
}
async function workerPids(p: Proc): Promise<number[]> {
  const r = await fetch(`http://127.0.0.1:${p.opsPort}/readyz`);
  const b = (await r.json()) as { perWorker: Array<{ pid: number }> };
  return b.perWorker.map((w) => w.pid);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('/metrics answers while a worker is being replaced', async () => {
  const gw = await startGatewayProcess(db.url, pki.dir, { LOG_LEVEL: 'warn', WORKERS: '2' }, { grantAll: ['acme'] });
  procs.push(gw);
  const ok = await fetch(`http://127.0.0.1:${gw.opsPort}/metrics`);
  expect(ok.status).toBe(200);
  const [w1] = await workerPids(gw);
  process.kill(w1 as number, 'SIGKILL');
  // The replacement is forked after 250 ms and then starts a whole gateway (database, LISTEN, TLS) before it
  // installs prom-client's IPC listener.
  await sleep(400);
  const t0 = Date.now();
  const r = await fetch(`http://127.0.0.1:${gw.opsPort}/metrics`);
  const body = await r.text();
  console.log({ status: r.status, ms: Date.now() - t0, body: body.slice(0, 120) });
  expect(r.status, body.slice(0, 200)).toBe(200);
}, 60_000);

it('SIGTERM to the primary just after a worker died: exit 0 and no worker left behind', async () => {
  const gw = await startGatewayProcess(db.url, pki.dir, { LOG_LEVEL: 'warn', WORKERS: '2', SHUTDOWN_TIMEOUT_MS: '20000' }, { grantAll: ['acme'] });
  procs.push(gw);
  // Stream clients that do not read: draining waits for their close handshakes (up to 2 s).
  for (let i = 0; i < 4; i++) {
    const c = new StreamClient(gw.port, { ca: pki.ca.certPem, client: partner, query: 'slu_id=1' });
    clients.push(c);
    await c.opened;
    (c.ws as unknown as { _socket: Socket })._socket.pause();
  }
  const before = processesOf(gw.opsPort);
  const [w1] = await workerPids(gw);
  const exit = new Promise<{ code: number | null; signal: string | null }>((r) => gw.process.once('exit', (code, signal) => r({ code, signal })));
  process.kill(w1 as number, 'SIGKILL');
  await sleep(50);
  gw.process.kill('SIGTERM');
  const ended = await exit;
  await sleep(4000);
  const after = processesOf(gw.opsPort);
  strays.push(...after);
  const conns = await db.pool.query<{ n: number }>(`select count(*)::int n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`);
  console.log({ before, ended, after, dbConnections: conns.rows[0]?.n });
  expect(ended.code).toBe(0);
  expect(after, 'processes of this gateway still running after its primary exited').toEqual([]);
}, 90_000);
