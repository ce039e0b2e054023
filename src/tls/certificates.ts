import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { webcrypto } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { createPkcs12 } from './pkcs12.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** ECDSA P-256 by default: handshakes are several times cheaper than RSA-2048 (see docs/capacity.md). */
export type KeyType = 'ecdsa' | 'rsa';

/** A certificate and its private key, both PEM. */
export interface CertAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

const DAY_MS = 86_400_000;

function algorithms(keyType: KeyType) {
  return keyType === 'ecdsa'
    ? { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } }
    : {
        gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      };
}

async function keyPair(keyType: KeyType): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithms(keyType).gen, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importSigningKey(keyPem: string, keyType: KeyType): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  const alg = keyType === 'ecdsa' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return webcrypto.subtle.importKey('pkcs8', der, alg, false, ['sign']);
}

/** PEM text ending in exactly one newline, so files can be concatenated into chains. */
function pemLine(pem: string): string {
  return pem.replace(/\s+$/, '') + '\n';
}

function escapeDn(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1');
}

/** Creates a self-signed certificate authority. */
export async function createCa(opts: { cn?: string; keyType?: KeyType; days?: number } = {}): Promise<CertAndKey> {
  const keyType = opts.keyType ?? 'ecdsa';
  const keys = await keyPair(keyType);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${escapeDn(opts.cn ?? 'sluice dev CA')}, O=sluice`,
    keys,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + (opts.days ?? 3650) * DAY_MS),
    signingAlgorithm: algorithms(keyType).sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: pemLine(cert.toString('pem')), keyPem: pemLine(await keyToPem(keys.privateKey)) };
}

/**
 * A CRL signed by `ca` listing `serials` (hex, as Node's serialNumber prints them), valid for `days`.
 * Give it to the gateway as TLS_CRL; it is checked at every handshake and request.
 */
export async function createCrl(ca: CertAndKey, serials: readonly string[], opts: { days?: number } = {}): Promise<string> {
  const caKeyType = keyTypeOfPem(ca.keyPem);
  const caCert = new x509.X509Certificate(ca.certPem);
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + (opts.days ?? 30) * DAY_MS),
    entries: serials.map((serialNumber) => ({ serialNumber: serialNumber.toLowerCase(), revocationDate: new Date(), reason: x509.X509CrlReason.keyCompromise })),
    signingKey: await importSigningKey(ca.keyPem, caKeyType),
    signingAlgorithm: algorithms(caKeyType).sign,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(caCert, false)],
  });
  // OpenSSL (and so Node's TLS) reads only the 'X509 CRL' label; @peculiar/x509 writes 'CRL'.
  return pemLine(crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----'));
}

export interface IssueOptions {
  readonly ca: CertAndKey;
  readonly cn: string;
  readonly kind: 'server' | 'client';
  /** DNS names and IP addresses for a server certificate. */
  readonly sans?: readonly string[];
  readonly keyType?: KeyType;
  readonly caKeyType?: KeyType;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly days?: number;
}

/** Issues a server or client (partner) certificate signed by `ca`. */
export async function issueCert(opts: IssueOptions): Promise<CertAndKey> {
  const keyType = opts.keyType ?? 'ecdsa';
  const caKeyType = opts.caKeyType ?? keyTypeOfPem(opts.ca.keyPem);
  const keys = await keyPair(keyType);
  const caCert = new x509.X509Certificate(opts.ca.certPem);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | (keyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0),
      true,
    ),
    new x509.ExtendedKeyUsageExtension([opts.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (opts.sans && opts.sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(opts.sans.map((s) => (isIP(s) ? { type: 'ip' as const, value: s } : { type: 'dns' as const, value: s }))),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${escapeDn(opts.cn)}, O=sluice partner`,
    issuer: caCert.subject,
    publicKey: keys.publicKey,
    signingKey: await importSigningKey(opts.ca.keyPem, caKeyType),
    notBefore: opts.notBefore ?? new Date(Date.now() - DAY_MS),
    notAfter: opts.notAfter ?? new Date(Date.now() + (opts.days ?? 825) * DAY_MS),
    signingAlgorithm: algorithms(caKeyType).sign,
    extensions,
  });
  return { certPem: pemLine(cert.toString('pem')), keyPem: pemLine(await keyToPem(keys.privateKey)) };
}

function keyTypeOfPem(keyPem: string): KeyType {
  // PKCS#8 EC keys carry the id-ecPublicKey OID (2a 86 48 ce 3d 02 01) near the start.
  const der = Buffer.from(x509.PemConverter.decodeFirst(keyPem));
  return der.subarray(0, 40).includes(Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01])) ? 'ecdsa' : 'rsa';
}

/** Paths of the dev/operator certificate set. */
export interface CertPaths {
  readonly ca: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
  readonly clientsDir: string;
}

/** Default layout under certs/: ca.crt, ca.key, server.crt, server.key, clients/<partner>.crt|.key|.p12. */
export function certPaths(caPath: string, certPath: string, keyPath: string): CertPaths {
  const dir = path.dirname(caPath);
  return { ca: caPath, caKey: path.join(dir, 'ca.key'), cert: certPath, key: keyPath, clientsDir: path.join(dir, 'clients') };
}

async function writePrivate(file: string, data: string | Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, data, { mode: 0o600 });
  await chmod(file, 0o600);
}

/** Loads the CA with its key from disk, as written by `ensureDevCerts`. */
export async function loadCa(paths: CertPaths): Promise<CertAndKey> {
  return { certPem: await readFile(paths.ca, 'utf8'), keyPem: await readFile(paths.caKey, 'utf8') };
}

/** The partner certificate `npm start` creates on first run (and grants every SLU, see gateway.ts). */
export const DEMO_PARTNER = 'demo';

/**
 * Creates whatever is missing of: a dev CA, a server certificate for localhost/127.0.0.1/::1, and a `demo`
 * partner. Existing files are never overwritten. Returns the list of files written.
 */
export async function ensureDevCerts(paths: CertPaths, extraSans: readonly string[] = []): Promise<string[]> {
  const written: string[] = [];
  let ca: CertAndKey;
  if (existsSync(paths.ca) && existsSync(paths.caKey)) {
    ca = await loadCa(paths);
  } else {
    if (existsSync(paths.ca)) throw new Error(`${paths.ca} exists but ${paths.caKey} does not: cannot issue certificates without the CA key`);
    ca = await createCa();
    await mkdir(path.dirname(paths.ca), { recursive: true });
    await writeFile(paths.ca, ca.certPem);
    await writePrivate(paths.caKey, ca.keyPem);
    written.push(paths.ca, paths.caKey);
  }
  if (!existsSync(paths.cert) || !existsSync(paths.key)) {
    const server = await issueCert({ ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1', '::1', ...extraSans] });
    await mkdir(path.dirname(paths.cert), { recursive: true });
    await writeFile(paths.cert, server.certPem + ca.certPem);
    await writePrivate(paths.key, server.keyPem);
    written.push(paths.cert, paths.key);
  }
  if (!existsSync(path.join(paths.clientsDir, `${DEMO_PARTNER}.crt`))) {
    written.push(...(await issuePartner(paths, ca, DEMO_PARTNER)).files);
  }
  return written;
}

/** A partner's certificate files: PEM pair for programs, a .p12 (+ its password) for browsers and Java. */
export interface PartnerBundle {
  readonly crt: string;
  readonly key: string;
  readonly p12: string;
  readonly p12PasswordFile: string;
  readonly p12Password: string;
  readonly files: readonly string[];
}

/** Issues a partner certificate (CN = partner) into clientsDir as <partner>.crt/.key/.p12/.p12.pass. */
export async function issuePartner(
  paths: CertPaths,
  ca: CertAndKey,
  partner: string,
  opts: { password?: string; days?: number; keyType?: KeyType } = {},
): Promise<PartnerBundle> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(partner)) {
    throw new TypeError(`partner name ${JSON.stringify(partner)} must be 1-64 letters, digits, '.', '_' or '-' (it becomes the file name and CN)`);
  }
  const issued = await issueCert({ ca, cn: partner, kind: 'client', ...(opts.days ? { days: opts.days } : {}), ...(opts.keyType ? { keyType: opts.keyType } : {}) });
  const base = path.join(paths.clientsDir, partner);
  const password = opts.password ?? webcrypto.getRandomValues(Buffer.alloc(12)).toString('base64url');
  const p12 = createPkcs12({ keyPem: issued.keyPem, certPems: [issued.certPem, ca.certPem], password, friendlyName: `sluice ${partner}` });
  const bundle = { crt: `${base}.crt`, key: `${base}.key`, p12: `${base}.p12`, p12PasswordFile: `${base}.p12.pass`, p12Password: password };
  await mkdir(paths.clientsDir, { recursive: true });
  await writeFile(bundle.crt, issued.certPem);
  await writePrivate(bundle.key, issued.keyPem);
  await writePrivate(bundle.p12, p12);
  await writePrivate(bundle.p12PasswordFile, password + '\n');
  return { ...bundle, files: [bundle.crt, bundle.key, bundle.p12, bundle.p12PasswordFile] };
}
