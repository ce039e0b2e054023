import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import { createPkcs12 } from '../../src/tls/pkcs12.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';

// clients/python/sluice_client.py against a real gateway: JSON lines of every reading, exactly once across a
// disconnect. Needs a python3 with `websockets` (Debian: apt-get install python3-websockets; .ci/run installs it).
const CLIENT = path.resolve('clients/python/sluice_client.py');
const python = [process.env.SLUICE_PYTHON, '/usr/bin/python3', 'python3'].find(
  (p) => p !== undefined && spawnSync(p, ['-c', 'import websockets'], { stdio: 'ignore' }).status === 0,
);
if (!python) console.warn('python client test skipped: no python3 with websockets. Install it with `apt-get install python3-websockets` (or set SLUICE_PYTHON).');

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let proc: ChildProcess | undefined;

beforeAll(async () => {
  if (!python) return;
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  ({ gateway } = await startTestGateway(db.url, pki));
});
afterAll(async () => {
  proc?.kill('SIGKILL');
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe.skipIf(!python)('python client', () => {
  it.each([['WebSocket', []], ['Server-Sent Events', ['--sse']]] as const)('prints every reading of its SLUs as a JSON line, exactly once across a disconnect, and its cursor on exit (%s)', async (_transport, extra) => {
    await db.pool.query('truncate slu_reading');
    const acme = await pki.client('acme');
    const [cert, key] = [path.join(pki.dir, 'py.crt'), path.join(pki.dir, 'py.key')];
    await writeFile(cert, acme.certPem);
    await writeFile(key, acme.keyPem, { mode: 0o600 });
    proc = spawn(python as string, [CLIENT, '--url', `https://127.0.0.1:${gateway.port}/cityxchange`, '--cert', cert, '--key', key, '--ca', pki.caFile, '--slu', '1,2', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Array<{ slu_id: number; v1: number }> = [];
    let stderr = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      for (const l of d.split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { slu_id: number; v1: number });
    });
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const until = async (pred: () => boolean, what: string) => {
      for (const deadline = Date.now() + 15_000; !pred(); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr: ${stderr.slice(-800)}`);
      }
    };
    await until(() => stderr.includes('"connected"'), 'the client to connect');
    await until(() => gateway.stream.clients === 1, 'the stream');
    await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }, { slu_id: 3, v1: 2 }, { slu_id: 2, v1: 3 }]);
    await until(() => lines.length >= 2, 'the first readings');
    // The gateway drops the stream (1012: restarting); readings commit while the client is away.
    for (const s of gateway.stream.sessions()) s.close('SLUICE_ERR_GOING_AWAY', 'test restart');
    await insertReadings(db.pool, [{ slu_id: 2, v1: 4 }, { slu_id: 1, v1: 5 }]);
    await until(() => stderr.includes('"disconnected"'), 'the disconnect');
    await insertReadings(db.pool, [{ slu_id: 1, v1: 6 }]);
    await until(() => lines.length >= 5, 'the resumed readings');
    await new Promise((r) => setTimeout(r, 300));
    expect(lines.map((r) => [r.slu_id, r.v1])).toEqual([[1, 1], [2, 3], [2, 4], [1, 5], [1, 6]]);
    expect(Object.keys(lines[0] as object)).toEqual(['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3', 't', 'slu_id', 'v1', 'v2', 'v3']);
    const exited = new Promise((r) => proc?.once('exit', r));
    proc.kill('SIGINT');
    await exited;
    expect(stderr).toMatch(/\{"cursor": "c1\.[A-Za-z0-9_-]+"\}/);
  }, 30_000);

  it.skipIf(spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0)('connects with a .p12 (through the openssl command) just as with PEM files', async () => {
    const partner = await pki.client('acme');
    const p12 = path.join(pki.dir, 'py.p12');
    await writeFile(p12, createPkcs12({ keyPem: partner.keyPem, certPems: [partner.certPem], password: 'pw', friendlyName: 'acme' }), { mode: 0o600 });
    const child = spawn(python as string, [CLIENT, '--url', `https://127.0.0.1:${gateway.port}/cityxchange`, '--p12', p12, '--p12-password', 'pw', '--ca', pki.caFile, '--slu', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    try {
      for (const deadline = Date.now() + 15_000; !err.includes('"connected"'); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no connection; stderr: ${err.slice(-800)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
      await insertReadings(db.pool, [{ slu_id: 8, v1: 88 }]);
      for (const deadline = Date.now() + 15_000; !out.includes('"v1": 88'); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > deadline) throw new Error(`no reading; stderr: ${err.slice(-800)}`);
      }
      expect(JSON.parse(out.trim().split('\n')[0] as string)).toMatchObject({ slu_id: 8, v1: 88 });
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
