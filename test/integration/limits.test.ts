import { readdirSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let acme: CertAndKey;
let pager: CertAndKey;
let x: CertAndKey;
const clients: StreamClient[] = [];
const open = (who: CertAndKey, query = 'slu_id=1') => {
  const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: who, query });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [acme, pager, x] = await Promise.all([pki.client('acme'), pki.client('pager'), pki.client('x')]);
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '5', WS_MAX_CONNECTIONS_PER_PARTNER: '2', WS_MAX_CONNECTIONS: '4' }));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('limits', () => {
  it('rate-limits REST per partner with 429 and Retry-After; other partners are unaffected', async () => {
    const a = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme });
    const p = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: pager });
    try {
      const results = await Promise.all(Array.from({ length: 12 }, () => a.get('/cityxchange/rows?slu_id=1&cnt=1')));
      const limited = results.filter((r) => r.status === 429);
      expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(5);
      expect(limited.length).toBeGreaterThanOrEqual(7);
      expect(limited[0]?.json()).toMatchObject({ statusCode: 429, code: 'SLUICE_ERR_RATE_LIMITED' });
      expect(limited[0]?.headers['retry-after']).toBeDefined();
      expect((await p.get('/cityxchange/rows?slu_id=1&cnt=1')).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1100));
      expect((await a.get('/cityxchange/rows?slu_id=1&cnt=1')).status).toBe(200); // the window moved on
    } finally {
      a.close();
      p.close();
    }
  });

  it('caps stream connections per partner (429) and in all (503), and frees the slot on close', async () => {
    const a1 = open(acme);
    const a2 = open(acme);
    await Promise.all([a1.opened, a2.opened]);
    await expect(open(acme).opened).rejects.toThrow('HTTP 429');
    const p1 = open(pager);
    const p2 = open(pager);
    await Promise.all([p1.opened, p2.opened]);
    await expect(open(x).opened).rejects.toThrow('HTTP 503'); // 4 connections: the gateway is full
    await a1.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = open(acme);
    await again.opened;
    // The connections that were let in are unaffected by the refusals.
    await insertReadings(db.pool, [{ slu_id: 1, v1: 777 }]);
    for (const c of [a2, p1, p2, again]) await c.until(() => c.readings.some((r) => r.v1 === 777), 'the reading');
    await Promise.all([a2.close(), p1.close(), p2.close(), again.close()]);
  });

  it('1,000 connect/disconnect cycles leak no file descriptors, sessions, watchers or memory', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const fds = () => readdirSync('/proc/self/fd').length;
    const settle = async () => {
      for (let i = 0; i < 50 && gateway.stream.clients > 0; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 200));
      gc();
    };
    const cycles = async (n: number) => {
      for (let round = 0; round < n / 2; round++) {
        const pair = [open(acme, 'slu_id=1,2'), open(pager)];
        await Promise.all(pair.map((c) => c.opened));
        await Promise.all(clients.splice(0).map((c) => c.close()));
      }
    };
    // Warm-up (lazy allocations, caches reach their size), then a baseline, then 1,000 more connections.
    await cycles(200);
    await settle();
    const fdsBefore = fds();
    const heapBefore = process.memoryUsage().heapUsed;
    await cycles(1000);
    await settle();
    expect(gateway.stream.clients).toBe(0);
    expect(gateway.hub.size).toBe(0);
    expect(gateway.grants.watching).toBe(0);
    // Sockets close asynchronously on both ends (client and gateway share this process): allow a few.
    expect(fds() - fdsBefore).toBeLessThan(10);
    // A leaked session (socket, TLS state, buffers) per connection would be well over 5 MB for 1,000.
    const grown = process.memoryUsage().heapUsed - heapBefore;
    console.log(`heap growth over 1,000 connections: ${(grown / 1024).toFixed(0)} KiB`);
    expect(grown).toBeLessThan(5 * 1024 * 1024);
  }, 180_000);
});
