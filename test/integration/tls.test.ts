import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  ({ gateway } = await startTestGateway(db.url, pki));
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

/**
 * Runs a raw TLS handshake plus one HTTP request. Resolves with what happened: the HTTP status line if the
 * server answered, or the error that ended the connection. With TLS 1.3 the client finishes its side of the
 * handshake before the server checks the certificate, so a refusal arrives as an alert on the first read.
 */
function attempt(client: CertAndKey | undefined, opts: tls.ConnectionOptions = {}): Promise<{ status?: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      servername: 'localhost',
      port: gateway.port,
      ca: pki.ca.certPem,
      ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
      ...opts,
    });
    let data = '';
    socket.on('secureConnect', () => socket.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: `${err.code ?? ''} ${err.message}` }));
    socket.on('close', () => resolve(data ? { status: data.split('\r\n')[0] as string } : { error: 'closed without a response' }));
  });
}

describe('mutual TLS', () => {
  it('serves a partner with a valid certificate from the CA', async () => {
    expect((await attempt(await pki.client('acme'))).status).toBe('HTTP/1.1 200 OK');
  });

  it.each(['TLSv1.3', 'TLSv1.2'] as const)('refuses a client without a certificate in the handshake (%s)', async (v) => {
    const r = await attempt(undefined, { minVersion: v, maxVersion: v });
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/certificate required|handshake failure|alert|socket hang up|ECONNRESET/i);
  });

  it('refuses a certificate from another CA', async () => {
    const r = await attempt(await pki.foreignClient('mallory'));
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/unknown ca|alert|ECONNRESET|closed without a response/i);
  });

  it('refuses an expired certificate', async () => {
    const day = 86_400_000;
    const expired = await pki.client('acme-old', { notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) });
    const r = await attempt(expired);
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/expired|alert|ECONNRESET|closed without a response/i);
  });

  it('refuses a certificate that is not yet valid', async () => {
    const day = 86_400_000;
    const future = await pki.client('acme-new', { notBefore: new Date(Date.now() + day), notAfter: new Date(Date.now() + 30 * day) });
    expect((await attempt(future)).status).toBeUndefined();
  });

  it('keeps serving valid partners after refusals (the process is unaffected)', async () => {
    const c = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: await pki.client('acme') });
    try {
      expect((await c.get('/cityxchange/latest')).status).toBe(200);
    } finally {
      c.close();
    }
  });

  it('issues no session tickets by default: every connection is a full handshake with a certificate check', async () => {
    const x = await pki.client('x');
    const first = await new Promise<Buffer | undefined>((resolve) => {
      let session: Buffer | undefined;
      const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: gateway.port, ca: pki.ca.certPem, cert: x.certPem, key: x.keyPem });
      socket.on('session', (s: Buffer) => (session = s));
      socket.on('secureConnect', () => socket.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
      socket.on('data', () => undefined);
      socket.on('close', () => resolve(session));
    });
    if (first) {
      const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: gateway.port, ca: pki.ca.certPem, cert: x.certPem, key: x.keyPem, session: first });
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      expect(socket.isSessionReused()).toBe(false);
      socket.destroy();
    }
  });

  it('serves the whole certificate chain so clients can verify the server with the CA alone', async () => {
    const x = await pki.client('x');
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: gateway.port, ca: pki.ca.certPem, cert: x.certPem, key: x.keyPem });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerCertificate().subject.CN).toBe('localhost');
    socket.destroy();
  });
});
