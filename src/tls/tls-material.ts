import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import * as x509 from '@peculiar/x509';
import type { PartnerIdentity } from './identity.ts';

/** Files the HTTPS/WSS server is built from; crl and denylist are optional. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly crl?: string | undefined;
  readonly denylist?: string | undefined;
}

function read(file: string, what: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the ${what} ${file} (${(err as NodeJS.ErrnoException).code}); set ${setting} or run "npm run certs"`, { cause: err });
  }
}

/** Serial numbers compare as uppercase hex without leading zeros (Node and CRL parsers differ on both). */
export function normalizeSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

/** A fingerprint as Node prints fingerprint256 (AB:CD:…), from that form, plain hex or sha256:hex. */
export function normalizeFingerprint(fp: string): string | undefined {
  const hex = fp.trim().replace(/^sha256:/i, '').replace(/:/g, '');
  if (!/^[0-9a-f]{64}$/i.test(hex)) return undefined;
  return hex.toUpperCase().match(/../g)?.join(':');
}

/** The serial numbers (normalised) every CRL in a PEM text lists. */
export function revokedSerials(pemText: string): string[] {
  const text = pemText.replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----');
  return (text.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? []).flatMap((pem) => new x509.X509Crl(pem).entries.map((e) => normalizeSerial(e.serialNumber)));
}

/**
 * Everything TLS-related loaded from files at one moment: the secure-context options for the server, and the
 * deny-lists checked at every request and upgrade (the handshake checks the CRL too, but a resumed TLS session
 * skips certificate verification, so the request-time check is what makes a revocation take effect at once).
 */
export class TlsMaterial {
  private constructor(
    readonly options: SecureContextOptions,
    private readonly revokedSerials: ReadonlySet<string>,
    private readonly deniedFingerprints: ReadonlySet<string>,
    readonly serverNotAfter: Date,
    readonly crlNextUpdate: Date | undefined,
  ) {}

  /** Reads and checks every file; throws a message naming the file and the setting when one is unusable. */
  static load(files: TlsFiles): TlsMaterial {
    const ca = read(files.ca, 'CA certificate', 'TLS_CA');
    const cert = read(files.cert, 'server certificate', 'TLS_CERT');
    const key = read(files.key, 'server key', 'TLS_KEY');
    let serverNotAfter: Date;
    try {
      serverNotAfter = new Date(new X509Certificate(cert).validTo);
    } catch (err) {
      throw new Error(`the server certificate ${files.cert} is not a PEM certificate (TLS_CERT)`, { cause: err });
    }
    const revoked = new Set<string>();
    let crlNextUpdate: Date | undefined;
    let crl: Buffer | undefined;
    if (files.crl) {
      // Both PEM labels are in use; OpenSSL reads only 'X509 CRL'.
      const text = read(files.crl, 'certificate revocation list', 'TLS_CRL').toString('utf8').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----');
      crl = Buffer.from(text);
      const pems = text.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? [];
      if (pems.length === 0) throw new Error(`${files.crl} holds no PEM CRL (-----BEGIN X509 CRL-----); DER? convert with openssl crl -inform der (TLS_CRL)`);
      for (const pem of pems) {
        let parsed: x509.X509Crl;
        try {
          parsed = new x509.X509Crl(pem);
        } catch (err) {
          throw new Error(`${files.crl} holds a CRL that cannot be parsed (TLS_CRL)`, { cause: err });
        }
        for (const e of parsed.entries) revoked.add(normalizeSerial(e.serialNumber));
        if (parsed.nextUpdate && (!crlNextUpdate || parsed.nextUpdate < crlNextUpdate)) crlNextUpdate = parsed.nextUpdate;
      }
    }
    const denied = new Set<string>();
    if (files.denylist) {
      const lines = read(files.denylist, 'fingerprint deny-list', 'TLS_DENYLIST').toString('utf8').split('\n');
      lines.forEach((line, i) => {
        const text = line.replace(/#.*/, '').trim();
        if (!text) return;
        const fp = normalizeFingerprint(text);
        if (!fp) throw new Error(`${files.denylist}:${i + 1}: not a SHA-256 fingerprint: ${JSON.stringify(text.slice(0, 80))} (TLS_DENYLIST)`);
        denied.add(fp);
      });
    }
    return new TlsMaterial({ ca, cert, key, ...(crl ? { crl } : {}) }, revoked, denied, serverNotAfter, crlNextUpdate);
  }

  /** True when the partner's certificate is in the CRL or on the fingerprint deny-list. */
  isDenied(p: PartnerIdentity): boolean {
    return this.revokedSerials.has(normalizeSerial(p.serial)) || this.deniedFingerprints.has(p.fingerprint256.toUpperCase());
  }

  get revokedCount(): number {
    return this.revokedSerials.size + this.deniedFingerprints.size;
  }
}
