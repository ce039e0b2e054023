import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
  close(): Promise<void>;
}

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
  let foreignCa: CertAndKey | undefined;
  return {
    dir, caFile, certFile, keyFile, ca,
    client: (cn, opts = {}) => issueCert({ ca, cn, kind: 'client', ...opts }),
    async foreignClient(cn) {
      foreignCa ??= await createCa({ cn: 'some other CA' });
      return issueCert({ ca: foreignCa, cn, kind: 'client' });
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
