import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCrl, issueCert } from '../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { sampleValue, scrape } from '../setup/prometheus.ts';
import { startTcpProxy } from '../setup/tcp-proxy.ts';

// The gauges the alert rules in deploy/prometheus/alerts.yml need and the rest of /metrics did not have:
// when the loaded TLS material expires, whether LISTEN is in place, and whether /readyz would answer 200.
let db: TestDatabase;
let pki: TestPki;
beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
});
afterAll(async () => {
  await db?.drop();
  await pki?.close();
});

const seconds = (d: Date) => d.getTime() / 1000;
const notAfter = (pem: string) => seconds(new Date(new X509Certificate(pem).validTo));
const expiry = (text: string, material: string) => sampleValue(text, 'sluice_tls_expiry_timestamp_seconds', { material });

describe('sluice_tls_expiry_timestamp_seconds', () => {
  it('is the notAfter of the server and CA certificates and the CRL nextUpdate in use, and follows a reload', async () => {
    const crlPem = await createCrl(pki.ca, [], { days: 3 });
    const crlFile = path.join(pki.dir, 'metrics.crl');
    await writeFile(crlFile, crlPem);
    // Its own server certificate file, so replacing it does not touch the one the other test uses.
    const certFile = path.join(pki.dir, 'metrics-server.crt');
    const keyFile = path.join(pki.dir, 'metrics-server.key');
    const first = await issueCert({ ca: pki.ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1'], notAfter: new Date('2031-05-06T07:08:09Z') });
    await writeFile(certFile, first.certPem);
    await writeFile(keyFile, first.keyPem, { mode: 0o600 });
    const { gateway } = await startTestGateway(db.url, pki, { TLS_CERT: certFile, TLS_KEY: keyFile, TLS_CRL: crlFile, TLS_WATCH: 'false' });
    try {
      let text = await scrape(gateway.opsPort as number);
      expect(expiry(text, 'server_certificate')).toBe(seconds(new Date('2031-05-06T07:08:09Z')));
      expect(expiry(text, 'ca_certificate')).toBe(notAfter(pki.ca.certPem));
      const nextUpdate = new x509.X509Crl(crlPem).nextUpdate as Date;
      expect(expiry(text, 'crl')).toBe(seconds(nextUpdate));
      // About 3 days from now, as the CRL was made: the figure an alert subtracts time() from.
      expect((expiry(text, 'crl') as number) - Date.now() / 1000).toBeGreaterThan(3 * 86_400 - 120);

      // A renewed certificate (reloaded without a restart, as SIGHUP does) shows its own date at once.
      const renewed = await issueCert({ ca: pki.ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1'], notAfter: new Date('2032-01-02T03:04:05Z') });
      await writeFile(certFile, renewed.certPem);
      await writeFile(keyFile, renewed.keyPem, { mode: 0o600 });
      expect(await gateway.reloadTls()).toBe(true);
      text = await scrape(gateway.opsPort as number);
      expect(expiry(text, 'server_certificate')).toBe(seconds(new Date('2032-01-02T03:04:05Z')));
    } finally {
      await gateway.close();
    }
  });

  it('has no crl series without TLS_CRL', async () => {
    const { gateway } = await startTestGateway(db.url, pki, { TLS_WATCH: 'false' });
    try {
      const text = await scrape(gateway.opsPort as number);
      expect(expiry(text, 'server_certificate')).toBe(notAfter(await readFile(pki.certFile, 'utf8')));
      expect(expiry(text, 'crl')).toBeUndefined();
    } finally {
      await gateway.close();
    }
  });
});

describe('sluice_listener_up and sluice_ready', () => {
  it('drop to 0 while the gateway is cut off from PostgreSQL and return to 1 when it is back', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port) });
    const { gateway } = await startTestGateway(proxy.via(db.url), pki, {
      LISTEN_RETRY_BASE_MS: '50', LISTEN_RETRY_CAP_MS: '300', LISTEN_HEALTHCHECK_MS: '300', PG_CONNECT_TIMEOUT_MS: '500', FEED_POLL_INTERVAL_MS: '100',
    });
    const ops = gateway.opsPort as number;
    const gauges = async () => {
      const text = await scrape(ops);
      return { listener: sampleValue(text, 'sluice_listener_up'), ready: sampleValue(text, 'sluice_ready'), readyz: (await fetch(`http://127.0.0.1:${ops}/readyz`)).status };
    };
    try {
      expect(await gauges()).toEqual({ listener: 1, ready: 1, readyz: 200 });
      const feedFailed = new Promise<void>((r) => gateway.feed.once('error', () => r()));
      proxy.cut();
      await new Promise<void>((r) => (gateway.listener.state === 'reconnecting' ? r() : gateway.listener.once('state', () => r())));
      await feedFailed;
      expect(await gauges()).toEqual({ listener: 0, ready: 0, readyz: 503 });

      const back = new Promise<void>((r) => gateway.listener.once('listening', () => r()));
      proxy.restore();
      await back;
      await new Promise<void>((r) => gateway.feed.once('batch', () => r())); // the first good read after the outage
      expect(await gauges()).toEqual({ listener: 1, ready: 1, readyz: 200 });
    } finally {
      await gateway.close();
      await proxy.close();
    }
  });
});
