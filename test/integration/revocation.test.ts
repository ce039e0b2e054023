import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import { createCrl, issueCert, type CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway, type LogLines } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

const serialOf = (c: CertAndKey) => new X509Certificate(c.certPem).serialNumber;
const fingerprintOf = (c: CertAndKey) => new X509Certificate(c.certPem).fingerprint256;

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let logs: LogLines;
let crlFile: string;
let denyFile: string;
let revokedAtStart: CertAndKey;
let acme: CertAndKey;
let pager: CertAndKey;
let x: CertAndKey;
const clients: StreamClient[] = [];

/** One raw TLS connection and one request; optionally offering a saved session for resumption. */
function attempt(client: CertAndKey, session?: Buffer): Promise<{ status?: string; error?: string; session?: Buffer; reused?: boolean }> {
  return new Promise((resolve) => {
    let saved: Buffer | undefined;
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: gateway.port, ca: pki.ca.certPem, cert: client.certPem, key: client.keyPem, ...(session ? { session } : {}) });
    let data = '';
    let reused = false;
    socket.on('session', (s: Buffer) => (saved = s));
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: `${err.code ?? ''} ${err.message}` }));
    socket.on('close', () => resolve(data ? { status: data.split('\r\n')[0] as string, ...(saved ? { session: saved } : {}), reused } : { error: 'closed without a response' }));
  });
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [revokedAtStart, acme, pager, x] = await Promise.all([pki.client('acme'), pki.client('acme'), pki.client('pager'), pki.client('x')]);
  crlFile = path.join(pki.dir, 'ca.crl');
  denyFile = path.join(pki.dir, 'deny.txt');
  await writeFile(crlFile, await createCrl(pki.ca, [serialOf(revokedAtStart)]));
  await writeFile(denyFile, '# fingerprints refused at every request\n');
  // Session tickets on (they are off by default): the harder case, a session from before the revocation.
  ({ gateway, logs } = await startTestGateway(db.url, pki, { TLS_CRL: crlFile, TLS_DENYLIST: denyFile, TLS_WATCH: 'true', TLS_SESSION_TICKETS: 'true' }));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('revocation', () => {
  it('refuses a certificate listed in TLS_CRL in the handshake, and serves the same partner with another one', async () => {
    const r = await attempt(revokedAtStart);
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/revoked|alert|ECONNRESET|closed without a response/i);
    expect((await attempt(acme)).status).toBe('HTTP/1.1 200 OK');
  });

  it('a certificate revoked at runtime is cut off at once: live stream closed, keep-alive requests 401, resumption refused', async () => {
    // Live connections of the soon-revoked certificate and of an unaffected partner.
    const stream = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1' });
    const other = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: pager, query: 'slu_id=1' });
    clients.push(stream, other);
    await Promise.all([stream.next('subscribed', 0), other.next('subscribed', 0)]);
    const keepAlive = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme });
    expect((await keepAlive.get('/cityxchange/latest')).status).toBe(200);
    const first = await attempt(acme);
    expect(first.session).toBeDefined();
    expect((await attempt(acme, first.session)).reused).toBe(true); // resumption works before the revocation

    // The operator publishes a new CRL; the file watcher reloads it (no SIGHUP needed).
    await writeFile(crlFile, await createCrl(pki.ca, [serialOf(revokedAtStart), serialOf(acme)]));
    await stream.until(() => stream.closeCode !== undefined, 'the revoked stream to close', 10_000);
    expect(stream.closeCode).toBe(4401);
    expect(stream.closeReason).toContain('SLUICE_ERR_CERT_REVOKED');
    expect(logs.some((l) => l.msg === 'TLS material reloaded')).toBe(true);

    const again = await keepAlive.get('/cityxchange/latest'); // same TLS connection as before the reload
    expect(again.status).toBe(401);
    expect(again.json()).toMatchObject({ code: 'SLUICE_ERR_CERT_REVOKED' });
    keepAlive.close();
    const resumed = await attempt(acme, first.session);
    expect(resumed.status === undefined || resumed.status.startsWith('HTTP/1.1 401')).toBe(true);
    expect(resumed.reused ?? false).toBe(false); // ticket keys were rotated

    // Everyone else kept their connection and keeps receiving.
    expect(other.closeCode).toBeUndefined();
    await insertReadings(db.pool, [{ slu_id: 1, v1: 4242 }]);
    await other.until(() => other.readings.some((r) => r.v1 === 4242), 'a reading after the reload');
  });

  it('the fingerprint deny-list refuses a certificate at request time', async () => {
    const c = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: x });
    try {
      expect((await c.get('/cityxchange/latest')).status).toBe(200);
      await writeFile(denyFile, `# incident 42\n${fingerprintOf(x)}\n`);
      expect(await gateway.reloadTls()).toBe(true); // what SIGHUP does
      const r = await c.get('/cityxchange/latest');
      expect(r.status).toBe(401);
      expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_CERT_REVOKED' });
      const s = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: x });
      clients.push(s);
      await expect(s.opened).rejects.toThrow('HTTP 401');
    } finally {
      c.close();
    }
  });

  it('a broken file on reload keeps the previous material and says why', async () => {
    await writeFile(denyFile, 'not a fingerprint\n');
    expect(await gateway.reloadTls()).toBe(false);
    expect(logs.some((l) => l.msg === 'TLS reload failed; keeping the previous certificates' && String(l.err).includes('deny.txt:1'))).toBe(true);
    expect((await attempt(pager)).status).toBe('HTTP/1.1 200 OK');
  });

  it('rotates the server certificate without a restart, and warns ahead of its expiry', async () => {
    const soon = await issueCert({ ca: pki.ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1'], notAfter: new Date(Date.now() + 5 * 86_400_000) });
    await writeFile(denyFile, '');
    await writeFile(pki.keyFile, soon.keyPem);
    await writeFile(pki.certFile, soon.certPem);
    expect(await gateway.reloadTls()).toBe(true);
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: gateway.port, ca: pki.ca.certPem, cert: pager.certPem, key: pager.keyPem });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.getPeerX509Certificate()?.serialNumber).toBe(new X509Certificate(soon.certPem).serialNumber);
    socket.destroy();
    expect(logs.some((l) => String(l.msg).startsWith('server certificate expires soon') && l.daysLeft === 4)).toBe(true);
  });
});
