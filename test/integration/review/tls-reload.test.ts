// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import { createCa, createCrl, issueCert, type CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: TLS material that OpenSSL will refuse at every handshake, but that TlsMaterial.load accepts: the reload
// succeeds (true), /readyz says tls "ok", sluice_tls_degraded is 0, and partners cannot connect.
let db: TestDatabase;
let pki: TestPki;
let g: Gateway;
let crlFile: string;
let acme: CertAndKey;
let goodCa: string;
let goodCrl: string;

const EC = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };
const DAY = 86_400_000;

async function importKey(pem: string): Promise<CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), EC, true, ['sign']);
}
async function publicOf(certPem: string): Promise<CryptoKey> {
  return new x509.X509Certificate(certPem).publicKey.export(EC, ['verify']);
}
/** A CA certificate for an existing key pair (a "renewal"), with chosen validity and key usage. */
async function reissueCa(ca: CertAndKey, opts: { notBefore: Date; notAfter: Date; usages: number }): Promise<string> {
  const old = new x509.X509Certificate(ca.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    subject: old.subject, issuer: old.subject, publicKey: await publicOf(ca.certPem), signingKey: await importKey(ca.keyPem),
    notBefore: opts.notBefore, notAfter: opts.notAfter, signingAlgorithm: SIGN, serialNumber: old.serialNumber,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(opts.usages, true),
      await x509.SubjectKeyIdentifierExtension.create(await publicOf(ca.certPem))],
  });
  return cert.toString('pem') + '\n';
}
/** An intermediate CA signed by `root`. */
async function intermediate(root: CertAndKey, cn: string): Promise<CertAndKey> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const rootCert = new x509.X509Certificate(root.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${cn}, O=sluice`, issuer: rootCert.subject, publicKey: keys.publicKey, signingKey: await importKey(root.keyPem),
    notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 365 * DAY), signingAlgorithm: SIGN,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey), await x509.AuthorityKeyIdentifierExtension.create(rootCert)],
  });
  const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { certPem: cert.toString('pem') + '\n', keyPem: keyPem + '\n' };
}

function attempt(client: CertAndKey, ca = pki.ca.certPem): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: g.port, ca, cert: client.certPem, key: client.keyPem });
    let data = '';
    socket.on('secureConnect', () => socket.write('GET /cityxchange/latest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? ''} ${err.message}`));
    socket.on('close', () => resolve(data ? (data.split('\r\n')[0] as string) : 'closed without a response'));
  });
}
async function health(): Promise<{ tls: unknown; degraded: number }> {
  const r = (await (await fetch(`http://127.0.0.1:${g.opsPort}/readyz`)).json()) as Record<string, unknown>;
  const text = await (await fetch(`http://127.0.0.1:${g.opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('sluice_tls_degraded '));
  return { tls: r.tls, degraded: Number(line?.split(' ')[1]) };
}
async function restore(): Promise<void> {
  await writeFile(pki.caFile, goodCa);
  await writeFile(crlFile, goodCrl);
  expect(await g.reloadTls()).toBe(true);
  expect(await attempt(acme)).toBe('HTTP/1.1 200 OK');
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  crlFile = path.join(pki.dir, 'ca.crl');
  goodCrl = await createCrl(pki.ca, []);
  await writeFile(crlFile, goodCrl);
  goodCa = await readFile(pki.caFile, 'utf8');
  ({ gateway: g } = await startTestGateway(db.url, pki, { TLS_CRL: crlFile, TLS_WATCH: 'false' }));
  expect(await attempt(acme)).toBe('HTTP/1.1 200 OK');
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('reloads that break every handshake but are accepted', () => {
  it('the CA certificate renewed without cRLSign in keyUsage (same key and subject)', async () => {
    await writeFile(pki.caFile, await reissueCa(pki.ca, { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 3650 * DAY), usages: x509.KeyUsageFlags.keyCertSign }));
    const ok = await g.reloadTls();
    const r = await attempt(acme);
    const h = await health();
    console.log('no cRLSign: reload', ok, '| handshake:', r, '| health', h);
    await restore();
    expect(ok === false || r === 'HTTP/1.1 200 OK').toBe(true);
  });

  it('the CA certificate replaced by an expired one (same key and subject)', async () => {
    await writeFile(pki.caFile, await reissueCa(pki.ca, { notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY), usages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign }));
    const ok = await g.reloadTls();
    const r = await attempt(acme);
    const h = await health();
    console.log('expired CA: reload', ok, '| handshake:', r, '| health', h);
    await restore();
    expect(ok === false || r === 'HTTP/1.1 200 OK').toBe(true);
  });

  it('a server certificate whose extended key usage is clientAuth only (every TLS client refuses it)', async () => {
    const goodCert = await readFile(pki.certFile, 'utf8');
    const goodKey = await readFile(pki.keyFile, 'utf8');
    const wrong = await issueCert({ ca: pki.ca, cn: 'localhost', kind: 'client', sans: ['localhost', '127.0.0.1'] });
    await writeFile(pki.certFile, wrong.certPem);
    await writeFile(pki.keyFile, wrong.keyPem);
    const ok = await g.reloadTls();
    const r = await attempt(acme);
    const h = await health();
    console.log('server cert with EKU clientAuth: reload', ok, '| handshake:', r, '| health', h);
    await writeFile(pki.certFile, goodCert);
    await writeFile(pki.keyFile, goodKey);
    await restore();
    expect(ok === false || r === 'HTTP/1.1 200 OK').toBe(true);
  });

  it('a second CA added to TLS_CA without a CRL of its own', async () => {
    const ca2 = await createCa({ cn: 'sluice second CA' });
    const partner2 = await issueCert({ ca: ca2, cn: 'acme', kind: 'client' });
    await writeFile(pki.caFile, goodCa + ca2.certPem);
    const ok = await g.reloadTls();
    const r1 = await attempt(acme);
    const r2 = await attempt(partner2);
    const h = await health();
    console.log('second CA without CRL: reload', ok, '| CA1 partner:', r1, '| CA2 partner:', r2, '| health', h);
    await restore();
    expect(ok === false || r2 === 'HTTP/1.1 200 OK').toBe(true);
  });
});
