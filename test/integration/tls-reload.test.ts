import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import { createCa, createCrl, issueCert, type CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';
import { startTestGateway, type LogLines } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';

// A reload whose files would break every handshake (a CRL from another CA or out of date, a key that does not
// match) is refused: the previous material keeps serving, /readyz and sluice_tls_degraded say so, and the next
// good reload clears it. At start-up the same files stop the gateway with a message naming the problem.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let logs: LogLines;
let crlFile: string;
let acme: CertAndKey;
let revoked: CertAndKey;

const serialOf = (c: CertAndKey) => new X509Certificate(c.certPem).serialNumber;

/** One fresh TLS connection (so the current secure context and CRL apply) and one request. */
function attempt(client: CertAndKey): Promise<{ status?: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: gateway.port, ca: pki.ca.certPem, cert: client.certPem, key: client.keyPem });
    let data = '';
    socket.on('secureConnect', () => socket.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: `${err.code ?? ''} ${err.message}` }));
    socket.on('close', () => resolve(data ? { status: data.split('\r\n')[0] as string } : { error: 'closed without a response' }));
  });
}

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${gateway.opsPort}/readyz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function degradedMetric(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('sluice_tls_degraded '));
  return Number(line?.split(' ')[1]);
}

/** The gateway serves as before the refused reload: a partner completes a handshake, the old CRL still applies. */
async function stillServingWithOldMaterial(): Promise<void> {
  expect((await attempt(acme)).status).toBe('HTTP/1.1 200 OK');
  expect((await attempt(revoked)).status).toBeUndefined();
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [acme, revoked] = await Promise.all([pki.client('acme'), pki.client('acme')]);
  crlFile = path.join(pki.dir, 'ca.crl');
  await writeFile(crlFile, await createCrl(pki.ca, [serialOf(revoked)]));
  // No watcher: each reload here is the explicit one (what SIGHUP does), so the test knows which files it read.
  ({ gateway, logs } = await startTestGateway(db.url, pki, { TLS_CRL: crlFile, TLS_WATCH: 'false' }));
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('a refused TLS reload keeps the old material and says so', () => {
  it('starts healthy', async () => {
    expect(await readyz()).toMatchObject({ status: 200, body: { ready: true, tls: 'ok' } });
    expect((await readyz()).body.tlsReason).toBeUndefined();
    expect(await degradedMetric()).toBe(0);
    await stillServingWithOldMaterial();
  });

  it('a CRL signed by another CA: refused, old CRL kept, partners still served, /readyz 200 "degraded", metric 1', async () => {
    await writeFile(crlFile, await createCrl(await pki.foreignCa(), []));
    expect(await gateway.reloadTls()).toBe(false);
    await stillServingWithOldMaterial();
    const r = await readyz();
    expect(r.status).toBe(200); // the old material serves: not a reason to leave the load balancer
    expect(r.body).toMatchObject({ ready: true, tls: 'degraded' });
    expect(String(r.body.tlsReason)).toMatch(/not signed by a CA in .*ca\.crt/);
    expect(await degradedMetric()).toBe(1);
    expect(logs.some((l) => l.msg === 'TLS reload failed; keeping the previous certificates' && /not signed by a CA/.test(String(l.err)) && l.level === 50)).toBe(true);
  });

  it('a CRL with the right issuer name but a signature from another key: refused', async () => {
    // Same subject as the real CA, different key: only the signature tells them apart.
    const lookalike = await createCa({ cn: 'sluice test CA' });
    expect(new X509Certificate(lookalike.certPem).subject).toBe(new X509Certificate(pki.ca.certPem).subject);
    await writeFile(crlFile, await createCrl(lookalike, []));
    expect(await gateway.reloadTls()).toBe(false);
    expect(String((await readyz()).body.tlsReason)).toMatch(/not signed by a CA/);
    await stillServingWithOldMaterial();
  });

  it('a CRL past its nextUpdate: refused (OpenSSL would fail every handshake)', async () => {
    await writeFile(crlFile, await createCrl(pki.ca, [], { days: -1 }));
    expect(await gateway.reloadTls()).toBe(false);
    expect(String((await readyz()).body.tlsReason)).toMatch(/past its nextUpdate/);
    await stillServingWithOldMaterial();
  });

  it('a server certificate that does not match the key: refused', async () => {
    const good = await readFile(pki.certFile, 'utf8');
    const other = await issueCert({ ca: pki.ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1'] });
    await writeFile(crlFile, await createCrl(pki.ca, [serialOf(revoked)]));
    await writeFile(pki.certFile, other.certPem);
    try {
      expect(await gateway.reloadTls()).toBe(false);
      expect(String((await readyz()).body.tlsReason)).toMatch(/does not belong to the server certificate/);
      await stillServingWithOldMaterial();
    } finally {
      await writeFile(pki.certFile, good);
    }
  });

  it('the next good reload clears the degraded state and applies the new CRL', async () => {
    await writeFile(crlFile, await createCrl(pki.ca, [serialOf(revoked), serialOf(acme)]));
    expect(await gateway.reloadTls()).toBe(true);
    expect(await readyz()).toMatchObject({ status: 200, body: { ready: true, tls: 'ok' } });
    expect((await readyz()).body.tlsReason).toBeUndefined();
    expect(await degradedMetric()).toBe(0);
    expect((await attempt(acme)).status).toBeUndefined(); // now revoked by the new CRL
    expect(logs.some((l) => l.msg === 'TLS no longer degraded')).toBe(true);
  });
});

describe('at start-up the same checks stop the gateway', () => {
  it.each([
    ['a CRL from another CA', async () => createCrl(await pki.foreignCa(), []), /not signed by a CA in .*TLS_CRL, TLS_CA/],
    ['a CRL past its nextUpdate', async () => createCrl(pki.ca, [], { days: -1 }), /past its nextUpdate .*publish a fresh CRL/],
  ])('%s', async (_what, crl, message) => {
    const file = path.join(pki.dir, 'start.crl');
    await writeFile(file, await crl());
    await expect(startTestGateway(db.url, pki, { TLS_CRL: file, OPS_ENABLED: 'false' })).rejects.toThrow(message);
  });
});

describe('a reload keeps the server options it was built with', () => {
  it('no TLS session can be resumed, before or after a reload (TLS_SESSION_TICKETS=false)', async () => {
    const partner = await pki.client('acme');
    const { gateway: g } = await startTestGateway(db.url, pki, { TLS_WATCH: 'false', OPS_ENABLED: 'false' });
    /** Connects (offering `session` if given), waits for a ticket if the server sends one, reports reuse. */
    const connect = (session?: Buffer) =>
      new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
        let ticket: Buffer | undefined;
        let reused = false;
        const s = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: g.port, ca: pki.ca.certPem, cert: partner.certPem, key: partner.keyPem, ...(session ? { session } : {}) });
        s.on('session', (t: Buffer) => (ticket = t));
        s.on('secureConnect', () => {
          reused = s.isSessionReused();
          s.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
        });
        s.on('data', () => undefined);
        s.on('error', reject);
        s.on('close', () => resolve({ reused, session: ticket }));
      });
    try {
      for (const phase of ['before', 'after']) {
        if (phase === 'after') expect(await g.reloadTls()).toBe(true);
        const first = await connect();
        const second = await connect(first.session);
        expect(second.reused, `${phase} a reload: session not resumed`).toBe(false);
      }
    } finally {
      await g.close();
    }
  });
});
