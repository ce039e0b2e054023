import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant, revoke } from '../../src/access/grant-store.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { SseClient } from '../setup/sse-client.ts';

// GET /cityxchange/events: the live stream as Server-Sent Events, same certificates, grants and resume as the
// WebSocket: id = cursor, event: readings, data: [R, …] with R exactly the /latest object.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let acme: CertAndKey;
let limited: CertAndKey;
let nobody: CertAndKey;
const clients: SseClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [acme, limited, nobody] = await Promise.all([pki.client('acme'), pki.client('limited'), pki.client('nobody')]);
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }));
  await grant(db.pool, 'limited', 1);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

function open(who: CertAndKey, query?: string, lastEventId?: string): SseClient {
  const c = new SseClient(gateway.port, { ca: pki.ca.certPem, client: who, ...(query ? { query } : {}), ...(lastEventId ? { lastEventId } : {}) });
  clients.push(c);
  return c;
}

describe('Server-Sent Events', () => {
  it('streams readings as `id: <cursor>`, `event: readings`, `data: [R, …]`, R byte for byte the /latest object', async () => {
    const c = open(acme, 'slu_id=1,2');
    await c.opened;
    expect(c.status).toBe(200);
    await c.until(() => c.events.some((e) => e.event === 'subscribed'), 'the subscribed event');
    await insertReadings(db.pool, [{ slu_id: 1, v1: 11, p1: 0.944 }, { slu_id: 3, v1: 13 }, { slu_id: 2, v1: 12 }]);
    await c.until(() => c.readings().length >= 2, 'two readings');
    expect(c.readings().map((r) => [r.slu_id, r.v1])).toEqual([[1, 11], [2, 12]]);
    const ev = c.events.find((e) => e.event === 'readings') as { id: string; data: string };
    expect(ev.id).toMatch(/^c1\./);
    const latest = (await httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme }).get('/cityxchange/latest')).body;
    for (const r of JSON.parse(ev.data) as Array<{ slu_id: number }>) {
      // The same text as /latest prints for that reading (legacy separators and float format).
      const text = ev.data.slice(1, -1).split(/,(?=\{)/).find((t) => t.includes(`"slu_id": ${r.slu_id},`)) as string;
      expect(latest).toContain(text);
    }
  });

  it('resumes with Last-Event-ID: exactly the readings committed meanwhile, none twice', async () => {
    const a = open(acme, 'slu_id=5');
    await a.until(() => a.events.some((e) => e.event === 'subscribed'), 'subscribed');
    await insertReadings(db.pool, [{ slu_id: 5, v1: 1 }, { slu_id: 5, v1: 2 }]);
    await a.until(() => a.readings().length === 2, 'the first two');
    a.close();
    await insertReadings(db.pool, [{ slu_id: 5, v1: 3 }]);
    await insertReadings(db.pool, [{ slu_id: 5, v1: 4 }]);
    const b = open(acme, 'slu_id=5', a.lastEventId);
    await insertReadings(db.pool, [{ slu_id: 5, v1: 5 }]);
    await b.until(() => b.readings().length >= 3, 'the rest');
    await new Promise((r) => setTimeout(r, 300));
    expect(b.readings().map((r) => r.v1)).toEqual([3, 4, 5]);
    // since= works the same for clients that cannot set the header.
    const c = open(acme, `slu_id=5&since=${encodeURIComponent(a.lastEventId as string)}`);
    await c.until(() => c.readings().length >= 3, 'the same three');
    expect(c.readings().map((r) => r.v1)).toEqual([3, 4, 5]);
  });

  it('applies grants: a partner granted SLU 1 asking for 1 and 2 gets an error event for 2 and only SLU 1; no grant at all is a 403', async () => {
    const c = open(limited, 'slu_id=1,2');
    await c.until(() => c.events.some((e) => e.event === 'error'), 'the refusal of SLU 2');
    expect(JSON.parse((c.events.find((e) => e.event === 'error') as { data: string }).data)).toMatchObject({ code: 'SLUICE_ERR_SLU_FORBIDDEN', slu_ids: [2] });
    await insertReadings(db.pool, [{ slu_id: 2, v1: 22 }, { slu_id: 1, v1: 21 }]);
    await c.until(() => c.readings().length >= 1, 'the SLU 1 reading');
    await new Promise((r) => setTimeout(r, 300));
    expect(c.readings().map((r) => r.slu_id)).toEqual([1]);
    const none = open(nobody);
    await none.opened;
    await none.until(() => none.ended, 'the refusal');
    expect(none.status).toBe(403);
    expect(JSON.parse(none.body)).toMatchObject({ code: 'SLUICE_ERR_NO_GRANTS' });
    const bad = open(acme, 'since=c1.not-a-cursor');
    await bad.until(() => bad.ended, 'the cursor refusal');
    // The error frame, then the last event: the close, with its code.
    expect(JSON.parse((bad.events.at(-1) as { data: string }).data)).toMatchObject({ type: 'error', code: 'SLUICE_ERR_CURSOR_INVALID', close: 4400 });
  });

  it('a grant revoked while connected stops that SLU at once (error event), and the last one ends the stream with 4403', async () => {
    const who = await pki.client('revokee');
    await grant(db.pool, 'revokee', 31);
    await grant(db.pool, 'revokee', 32);
    const c = open(who, 'slu_id=31,32');
    await c.until(() => c.events.some((e) => e.event === 'subscribed'), 'subscribed');
    await revoke(db.pool, 'revokee', 32);
    await c.until(() => c.events.some((e) => e.event === 'error' && e.data.includes('SLUICE_ERR_GRANT_REVOKED')), 'the revocation');
    await insertReadings(db.pool, [{ slu_id: 32, v1: 3201 }, { slu_id: 31, v1: 3101 }]);
    await c.until(() => c.readings().some((r) => r.v1 === 3101), 'the still-granted SLU');
    expect(c.readings().some((r) => r.v1 === 3201)).toBe(false);
    await revoke(db.pool, 'revokee', 31);
    await c.until(() => c.ended, 'the end of the stream');
    expect(JSON.parse((c.events.at(-1) as { data: string }).data)).toMatchObject({ code: 'SLUICE_ERR_NO_GRANTS', close: 4403 });
  });

  it('works with curl -N and a client certificate', async () => {
    const keyFile = path.join(pki.dir, 'acme.key');
    const certFile = path.join(pki.dir, 'acme.crt');
    await writeFile(keyFile, acme.keyPem, { mode: 0o600 });
    await writeFile(certFile, acme.certPem);
    const out = new Promise<string>((resolve) => {
      execFile('curl', ['-sN', '--max-time', '3', '--cacert', pki.caFile, '--cert', certFile, '--key', keyFile, `https://localhost:${gateway.port}/cityxchange/events?slu_id=7`, '--resolve', `localhost:${gateway.port}:127.0.0.1`], (_err, stdout) => resolve(stdout));
    });
    await new Promise((r) => setTimeout(r, 1000));
    await insertReadings(db.pool, [{ slu_id: 7, v1: 77 }]);
    const text = await out;
    expect(text).toMatch(/^event: subscribed$/m);
    expect(text).toMatch(/^id: c1\.[A-Za-z0-9_-]+\nevent: readings\ndata: \[\{"p1": null, .*"slu_id": 7, "v1": 77, "v2": null, "v3": null\}\]$/m);
  });

  it('ends with a last `event: error` naming the code when the gateway shuts down (1012: resume elsewhere)', async () => {
    const { gateway: g } = await startTestGateway(db.url, pki);
    const c = new SseClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1' });
    clients.push(c);
    await c.until(() => c.events.some((e) => e.event === 'subscribed'), 'subscribed');
    await g.close();
    await c.until(() => c.ended, 'the end of the response');
    expect(JSON.parse((c.events.at(-1) as { data: string }).data)).toMatchObject({ type: 'error', code: 'SLUICE_ERR_GOING_AWAY', close: 1012 });
  });
});

describe('Server-Sent Events, bounded', () => {
  it('a client that does not read is cut off (its buffer bound), with nothing lost on resume', async () => {
    const { gateway: g } = await startTestGateway(db.url, pki, { WS_MAX_BUFFER_BYTES: '65536', REST_RATE_LIMIT: '0' });
    try {
      const c = new SseClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=9' });
      clients.push(c);
      await c.until(() => c.events.some((e) => e.event === 'subscribed'), 'subscribed');
      // Stop reading: the response's socket is paused, so the server's writes pile up.
      const sock = (c as unknown as { req: { socket: import('node:net').Socket } }).req.socket;
      sock.pause();
      // ~12 MB: more than the kernel's socket buffers on loopback hold, so the rest waits in the gateway.
      for (let i = 0; i < 40; i++) await db.pool.query(`insert into slu_reading (slu_id, v1, p1, a1) select 9, ${i * 1000} + n, 0.9, 16.6 from generate_series(0, 999) n`);
      await new Promise((r) => setTimeout(r, 1500));
      expect(g.stream.clients).toBe(0); // the gateway cut it off and holds nothing for it
      sock.resume();
      await c.until(() => c.ended, 'the end of the response', 15_000);
      // What it did receive, plus a resume from its last id, is every reading exactly once.
      const resumed = new SseClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=9', ...(c.lastEventId ? { lastEventId: c.lastEventId } : {}) });
      clients.push(resumed);
      const got = () => [...c.readings(), ...resumed.readings()].map((r) => r.v1);
      await resumed.until(() => got().length >= 40_000, 'every reading', 30_000);
      expect([...got()].sort((a, b) => a - b)).toEqual(Array.from({ length: 40_000 }, (_, i) => i));
    } finally {
      await g.close();
    }
  }, 60_000);
});
