// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: "/latest answers 503 as quickly as /rows while the database is down". Tested upstream only with a
// proxy that refuses connections. Here the database hangs (packets go nowhere: a frozen server, a network
// partition): every query runs into PG_QUERY_TIMEOUT_MS / PG_CONNECT_TIMEOUT_MS.

/** A proxy that can freeze: connections stay open, but nothing is forwarded and new ones get no answer. */
async function freezingProxy(target: { host: string; port: number }) {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let frozen = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => { client.destroy(); upstream.destroy(); pairs.delete(pair); };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (d) => { if (!frozen) upstream.write(d); });
    upstream.on('data', (d) => { if (!frozen) client.write(d); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    via(url: string) { const u = new URL(url); u.hostname = '127.0.0.1'; u.port = String(port); return u.toString(); },
    freeze() { frozen = true; },
    thaw() { frozen = false; for (const [a, b] of pairs) { a.destroy(); b.destroy(); } pairs.clear(); },
    close: () => { for (const [a, b] of pairs) { a.destroy(); b.destroy(); } return new Promise<void>((r) => server.close(() => r())); },
  };
}

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }, { slu_id: 2, v1: 2 }]);
}, 60_000);
afterAll(async () => {
  await db?.drop();
  await pki?.close();
});

describe('/latest vs /rows while the database hangs', () => {
  it('time to the 503', async () => {
    const u = new URL(db.url);
    const proxy = await freezingProxy({ host: u.hostname, port: Number(u.port) });
    const { gateway: g } = await startTestGateway(proxy.via(db.url), pki, { PG_CONNECT_TIMEOUT_MS: '1000', PG_QUERY_TIMEOUT_MS: '2000', REST_RATE_LIMIT: '0' });
    const c = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const B = '/cityxchange';
    try {
      expect((await c.get(`${B}/latest`)).status).toBe(200);
      expect((await c.get(`${B}/rows?slu_id=1&cnt=1`)).status).toBe(200);
      expect((await c.get(`${B}/rows?slu_id=2&cnt=2`)).status).toBe(200);
      proxy.freeze();
      const res: string[] = [];
      const worst: Record<string, number> = { latest: 0, rows: 0 };
      for (let i = 0; i < 10; i++) {
        for (const [name, path] of [['rows', `${B}/rows?slu_id=1&cnt=${3 + i}`], ['latest', `${B}/latest`]] as const) {
          const t0 = Date.now();
          const r = await c.get(path);
          const ms = Date.now() - t0;
          worst[name] = Math.max(worst[name] as number, ms);
          res.push(`${name} ${r.status} ${ms} ms`);
        }
      }
      console.log(res.join('\n'));
      console.log('worst', worst);
      const med = (n: string) => { const v = res.filter((l) => l.startsWith(n + ' ')).map((l) => Number(l.split(' ')[2])).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
      console.log('median rows', med('rows'), 'median latest', med('latest'));
      expect(worst.latest, '/latest must 503 as fast as /rows').toBeLessThanOrEqual((worst.rows as number) + 500);
    } finally {
      c.close();
      proxy.thaw();
      await g.close();
      await proxy.close();
    }
  }, 90_000);
});
