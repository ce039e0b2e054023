import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
let dir: string;
let env: NodeJS.ProcessEnv;
const tsx = path.resolve('node_modules/.bin/tsx');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sluice-certs-'));
  env = { ...process.env, TLS_CA: `${dir}/ca.crt`, TLS_CERT: `${dir}/server.crt`, TLS_KEY: `${dir}/server.key` };
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('npm run certs', () => {
  it('creates a dev CA, an ECDSA P-256 server certificate for localhost/127.0.0.1/::1 and a demo partner', async () => {
    const { stdout } = await run(tsx, ['src/cli/certs.ts'], { env });
    expect(stdout).toContain('server.crt');
    const ca = new X509Certificate(await readFile(`${dir}/ca.crt`));
    const server = new X509Certificate(await readFile(`${dir}/server.crt`));
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(server.publicKey.asymmetricKeyType).toBe('ec');
    expect(server.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(ca.ca).toBe(true);
    expect((await stat(`${dir}/server.key`)).mode & 0o077).toBe(0); // private keys are not world-readable
    expect((await stat(`${dir}/ca.key`)).mode & 0o077).toBe(0);
    // Idempotent: a second run keeps what exists.
    const again = await run(tsx, ['src/cli/certs.ts'], { env });
    expect(again.stdout).toContain('nothing to do');
    expect(new X509Certificate(await readFile(`${dir}/ca.crt`)).fingerprint256).toBe(ca.fingerprint256);
  });

  it('issues a partner certificate as PEM pair and a password-protected .p12 that TLS clients can load', async () => {
    await run(tsx, ['src/cli/certs.ts', 'client', 'acme-energy', '--password', 's3cret'], { env });
    const crt = new X509Certificate(await readFile(`${dir}/clients/acme-energy.crt`));
    expect(crt.subject).toContain('CN=acme-energy');
    expect(crt.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    const p12 = await readFile(`${dir}/clients/acme-energy.p12`);
    expect(() => tls.createSecureContext({ pfx: p12, passphrase: 's3cret' })).not.toThrow();
    expect(() => tls.createSecureContext({ pfx: p12, passphrase: 'wrong' })).toThrow(/mac verify failure|password/i);
    expect((await readFile(`${dir}/clients/acme-energy.p12.pass`, 'utf8')).trim()).toBe('s3cret');

    // The .p12 really authenticates: a mutual-TLS handshake against a server trusting the CA.
    const server = tls.createServer({
      cert: await readFile(`${dir}/server.crt`), key: await readFile(`${dir}/server.key`), ca: await readFile(`${dir}/ca.crt`),
      requestCert: true, rejectUnauthorized: true,
    }, (s) => s.end(String(s.getPeerCertificate().subject.CN)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const caPem = await readFile(`${dir}/ca.crt`);
    try {
      const cn = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', servername: 'localhost', pfx: p12, passphrase: 's3cret', ca: caPem });
        let data = '';
        s.on('data', (d: Buffer) => (data += d)).on('end', () => resolve(data)).on('error', reject);
      });
      expect(cn).toBe('acme-energy');
    } finally {
      server.close();
    }
  });

  it('rejects partner names that are not safe file names', async () => {
    await expect(run(tsx, ['src/cli/certs.ts', 'client', '../evil'], { env })).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/must be 1-64 letters/) });
  });
});
