import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { createCa, issueCert, type CertAndKey } from '../../src/tls/certificates.ts';

/** A throwaway PKI for one test file: files on disk for the server, PEM strings for clients. */
export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly ca: CertAndKey;
  /** Issues a partner certificate from the test CA. */
  client(cn: string, opts?: { notBefore?: Date; notAfter?: Date }): Promise<CertAndKey>;
  /** A partner certificate from an unrelated CA (must be refused). */
  foreignClient(cn: string): Promise<CertAndKey>;
  /** The unrelated CA itself (for CRLs that must be refused). */
  foreignCa(): Promise<CertAndKey>;
  /**
   * A client certificate from the test CA with any subject, e.g. two CNs ([{CN: ['a']}, {CN: ['b']}]) or a
   * multi-valued RDN ([{CN: ['a'], O: ['x']}]); values as { utf8String: '…' } are encoded exactly as given. With
   * `ca`, basicConstraints CA:TRUE and keyUsage keyCertSign (still with the clientAuth extended key usage).
   */
  custom(subject: x509.JsonNameParams, opts?: { ca?: boolean }): Promise<CertAndKey>;
  close(): Promise<void>;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' };
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' };

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-pki-'));
  const ca = await createCa({ cn: 'sluice test CA' });
  const server = await issueCert({ ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1', '::1'] });
  const caFile = path.join(dir, 'ca.crt');
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  await writeFile(caFile, ca.certPem);
  await writeFile(certFile, server.certPem);
  await writeFile(keyFile, server.keyPem, { mode: 0o600 });
  let foreign: CertAndKey | undefined;
  const foreignCa = async () => (foreign ??= await createCa({ cn: 'some other CA' }));
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), EC, false, ['sign']);
  return {
    dir, caFile, certFile, keyFile, ca, foreignCa,
    client: (cn, opts = {}) => issueCert({ ca, cn, kind: 'client', ...opts }),
    async foreignClient(cn) {
      return issueCert({ ca: await foreignCa(), cn, kind: 'client' });
    },
    async custom(subject, opts = {}) {
      const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
      const usages = x509.KeyUsageFlags.digitalSignature | (opts.ca ? x509.KeyUsageFlags.keyCertSign : 0);
      const cert = await x509.X509CertificateGenerator.create({
        subject: new x509.Name(subject),
        issuer: caCert.subject,
        publicKey: keys.publicKey,
        signingKey: caKey,
        notBefore: new Date(Date.now() - 86_400_000),
        notAfter: new Date(Date.now() + 86_400_000),
        signingAlgorithm: EC_SIGN,
        extensions: [
          new x509.BasicConstraintsExtension(opts.ca ?? false, undefined, true),
          new x509.KeyUsagesExtension(usages, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
      return { certPem: cert.toString('pem') + '\n', keyPem: keyPem + '\n' };
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
