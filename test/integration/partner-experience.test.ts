import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient, toNumeric, type Reading } from '../../src/index.ts';
import type { Gateway } from '../../src/gateway.ts';
import { LatestReading, WrapperResponse, ErrorResponse } from '../../src/rest/openapi.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let acme: CertAndKey;
let seq = 70_000;
const readings = (sluId: number, n: number) => Array.from({ length: n }, () => ({ slu_id: sluId, v1: seq++, p1: 0.944, a1: 8.5, k1: 56468.7031 }));

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway } = await startTestGateway(db.url, pki, { OPS_PORT: '0' }));
  await insertReadings(db.pool, readings(1, 2));
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('client library', () => {
  it('sees every reading exactly once across a gateway restart, resuming with its cursor', async () => {
    let g = gateway;
    const client = new SluiceClient({ url: `https://127.0.0.1:${g.port}/cityxchange`, cert: acme.certPem, key: acme.keyPem, ca: pki.ca.certPem, sluIds: [5], retryBaseMs: 50 });
    const got: Reading[] = [];
    const consuming = (async () => {
      for await (const r of client.readings()) got.push(r);
    })();
    await new Promise<void>((r) => client.once('connected', () => r()));
    const before = readings(5, 5);
    await insertReadings(db.pool, before);
    for (let i = 0; i < 100 && got.length < 5; i++) await new Promise((r) => setTimeout(r, 50));
    // The gateway goes away (1012) and comes back on the same port; writes continue meanwhile.
    const port = g.port;
    await g.close();
    const during = readings(5, 7);
    await insertReadings(db.pool, during);
    ({ gateway: g } = await startTestGateway(db.url, pki, { PORT: String(port), OPS_PORT: '0' }));
    gateway = g;
    const after = readings(5, 3);
    await insertReadings(db.pool, after);
    const all = [...before, ...during, ...after];
    for (let i = 0; i < 200 && got.length < all.length; i++) await new Promise((r) => setTimeout(r, 50));
    client.close();
    await consuming;
    expect(got.map((r) => r.v1)).toEqual(all.map((r) => r.v1));
    expect(client.reconnects).toBeGreaterThanOrEqual(1);
    const n = toNumeric(got[0] as Reading);
    expect(n.p1).toBeCloseTo(0.944, 6);
    expect(n.k1).toBe(56468.7031); // the printed value; Math.fround(n.k1) is the stored float4 exactly
    expect(n.t).toBeInstanceOf(Date);
  }, 30_000);

  it('stops with a clear error when the gateway refuses for good (no grants)', async () => {
    const nobody = await pki.client('nobody');
    const client = new SluiceClient({ url: `https://127.0.0.1:${gateway.port}/cityxchange`, cert: nobody.certPem, key: nobody.keyPem, ca: pki.ca.certPem });
    const it = client.readings();
    await expect(it.next()).rejects.toMatchObject({ code: 'SLUICE_ERR_NO_GRANTS' });
  });
});

describe('npx sluice tail', () => {
  it('prints live readings as JSON lines and the cursor on exit', async () => {
    const dir = pki.dir;
    await writeFile(path.join(dir, 'acme.crt'), acme.certPem);
    await writeFile(path.join(dir, 'acme.key'), acme.keyPem);
    const child = spawn(process.execPath, ['bin/sluice.mjs', 'tail', '--slu', '6', '--url', `https://127.0.0.1:${gateway.port}/cityxchange`, '--cert', path.join(dir, 'acme.crt'), '--key', path.join(dir, 'acme.key'), '--ca', pki.caFile]);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    for (let i = 0; i < 200 && !err.includes('# connected'); i++) await new Promise((r) => setTimeout(r, 50));
    const rows = readings(6, 3);
    await insertReadings(db.pool, rows);
    for (let i = 0; i < 200 && out.trim().split('\n').length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Reading);
    expect(lines.map((l) => l.v1)).toEqual(rows.map((r) => r.v1));
    expect(lines[0]).toMatchObject({ slu_id: 6, p1: '0.944000006', a1: '8.5' });
    expect(err).toMatch(/# cursor: c1\./);
  }, 30_000);
});

describe('metrics and health', () => {
  it('exposes Prometheus metrics on the ops port', async () => {
    const rest = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme });
    await rest.get('/cityxchange/rows?slu_id=1&cnt=1');
    await rest.get('/cityxchange/rows?slu_id=1&cnt=0');
    rest.close();
    const res = await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const name of ['sluice_stream_clients', 'sluice_readings_in_total', 'sluice_readings_out_total', 'sluice_notify_to_send_seconds_bucket', 'sluice_listener_reconnects_total', 'sluice_pg_notification_queue_usage', 'sluice_catch_up_rows_bucket', 'sluice_stream_closes_total', 'sluice_refusals_total', 'sluice_nodejs_eventloop_lag_seconds']) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/sluice_rest_request_duration_seconds_count\{route="\/cityxchange\/rows",status="200"\} 1/);
    expect(text).toMatch(/sluice_rest_request_duration_seconds_count\{route="\/cityxchange\/rows",status="400"\} 1/);
    expect(text).toMatch(/sluice_pg_notification_queue_usage 0/);
    // The stream's latency, split into its two stages: a reading inserted now is read once and published once.
    const count = (t: string, m: string) => Number(new RegExp(`^${m}_count (\\d+)`, 'm').exec(t)?.[1] ?? -1);
    const published = count(text, 'sluice_publish_seconds');
    expect(count(text, 'sluice_feed_read_seconds')).toBeGreaterThan(0); // the start-up read, at least
    await insertReadings(db.pool, readings(7, 1));
    let after = text;
    for (let i = 0; i < 100 && count(after, 'sluice_publish_seconds') <= published; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await (await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`)).text();
    }
    expect(count(after, 'sluice_publish_seconds')).toBe(published + 1);
    expect(count(after, 'sluice_notify_to_send_seconds')).toBeGreaterThan(0);
    const ready = await fetch(`http://127.0.0.1:${gateway.opsPort}/readyz`);
    expect(((await ready.json()) as { process: { rssBytes: number } }).process.rssBytes).toBeGreaterThan(0);
  });
});

describe('OpenAPI', () => {
  it('serves a document generated from the same zod schemas that real responses satisfy', async () => {
    const rest = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme });
    try {
      const doc = (await rest.get('/cityxchange/openapi.json')).json<{ openapi: string; paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } }>();
      expect(doc.openapi).toBe('3.0.3');
      expect(Object.keys(doc.paths)).toEqual(['/latest', '/rows', '/time']);
      expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['RowReading', 'LatestReading', 'Readings', 'Error']));
      // The real bodies parse with the schemas the document was generated from.
      for (const r of (await rest.get('/cityxchange/latest')).json<unknown[]>()) LatestReading.parse(r);
      WrapperResponse.parse((await rest.get('/cityxchange/rows?slu_id=1&cnt=5')).json());
      WrapperResponse.parse((await rest.get('/cityxchange/time?slu_id=1&begin=0&end=2000000000')).json());
      ErrorResponse.parse((await rest.get('/cityxchange/rows?slu_id=x&cnt=5')).json());
    } finally {
      rest.close();
    }
  });
});
