import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
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
    /** The earliest notAfter of the CA certificates in TLS_CA: past it, that CA's partners are all refused. */
    readonly caNotAfter: Date,
    /** The earliest nextUpdate of the CRLs in TLS_CRL (undefined without a CRL, or when none sets one). */
    readonly crlNextUpdate: Date | undefined,
  ) {}

  /**
   * Reads and checks every file; throws a message naming the file and the setting when one is unusable. The
   * checks are those whose failure would otherwise surface only as every handshake failing: the server
   * certificate parses, is within its validity period and matches the key; every CRL is signed by a CA in
   * TLS_CA and is current (OpenSSL refuses all clients of a CA whose CRL is past nextUpdate or from elsewhere);
   * and OpenSSL accepts the whole set as a secure context.
   */
  static async load(files: TlsFiles, now: Date = new Date()): Promise<TlsMaterial> {
    const ca = read(files.ca, 'CA certificate', 'TLS_CA');
    const cert = read(files.cert, 'server certificate', 'TLS_CERT');
    const key = read(files.key, 'server key', 'TLS_KEY');
    const caCerts = (ca.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => {
      try {
        return new x509.X509Certificate(pem);
      } catch (err) {
        throw new Error(`${files.ca} holds a certificate that cannot be parsed (TLS_CA)`, { cause: err });
      }
    });
    if (caCerts.length === 0) throw new Error(`${files.ca} holds no PEM certificate (-----BEGIN CERTIFICATE-----) (TLS_CA)`);
    for (const c of caCerts) {
      // OpenSSL refuses every partner certificate that chains to an expired (or not yet valid) CA.
      if (c.notAfter < now) throw new Error(`the CA certificate "${c.subject}" in ${files.ca} expired at ${c.notAfter.toISOString()}; every partner handshake would fail (TLS_CA)`);
      if (c.notBefore > now) throw new Error(`the CA certificate "${c.subject}" in ${files.ca} is not valid before ${c.notBefore.toISOString()}; partner handshakes would fail (TLS_CA)`);
    }
    let server: X509Certificate;
    try {
      server = new X509Certificate(cert);
    } catch (err) {
      throw new Error(`the server certificate ${files.cert} is not a PEM certificate (TLS_CERT)`, { cause: err });
    }
    const serverNotAfter = new Date(server.validTo);
    if (serverNotAfter < now) throw new Error(`the server certificate ${files.cert} expired at ${serverNotAfter.toISOString()}; every client would refuse it (TLS_CERT)`);
    if (new Date(server.validFrom) > now) throw new Error(`the server certificate ${files.cert} is not valid before ${new Date(server.validFrom).toISOString()}; clients would refuse it (TLS_CERT)`);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(key);
    } catch (err) {
      throw new Error(`the server key ${files.key} is not a PEM private key (TLS_KEY)`, { cause: err });
    }
    if (!server.checkPrivateKey(privateKey)) throw new Error(`the server key ${files.key} does not belong to the server certificate ${files.cert} (TLS_KEY, TLS_CERT)`);
    // A server certificate limited to other purposes (extended key usage without serverAuth) is refused by every
    // TLS client (INVALID_PURPOSE).
    const eku = new x509.X509Certificate(cert.toString('utf8')).getExtension(x509.ExtendedKeyUsageExtension);
    if (eku && !eku.usages.map(String).includes(x509.ExtendedKeyUsage.serverAuth)) {
      throw new Error(`the server certificate ${files.cert} may not be used by a TLS server (its extended key usage lacks serverAuth); clients would refuse it (TLS_CERT)`);
    }
    const revoked = new Set<string>();
    const crlIssuers = new Set<string>();
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
        await checkCrl(parsed, caCerts, files, now);
        crlIssuers.add(parsed.issuer);
        for (const e of parsed.entries) revoked.add(normalizeSerial(e.serialNumber));
        if (parsed.nextUpdate && (!crlNextUpdate || parsed.nextUpdate < crlNextUpdate)) crlNextUpdate = parsed.nextUpdate;
      }
    }
    if (files.crl) {
      // With a CRL configured OpenSSL checks one for every certificate's issuer: a CA of TLS_CA without a CRL of its
      // own would lock all its partners out (UNABLE_TO_GET_CRL).
      const missing = caCerts.filter((c) => !crlIssuers.has(c.subject));
      if (missing.length > 0) throw new Error(`${files.crl} has no CRL of the CA "${missing.map((c) => c.subject).join('", "')}" in ${files.ca}; its partners would all be refused (TLS_CRL, TLS_CA)`);
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
    const options: SecureContextOptions = { ca, cert, key, ...(crl ? { crl } : {}) };
    try {
      createSecureContext(options);
    } catch (err) {
      throw new Error(`OpenSSL refuses the TLS files together (TLS_CA, TLS_CERT, TLS_KEY, TLS_CRL): ${(err as Error).message}`, { cause: err });
    }
    const caNotAfter = new Date(Math.min(...caCerts.map((c) => c.notAfter.getTime())));
    return new TlsMaterial(options, revoked, denied, serverNotAfter, caNotAfter, crlNextUpdate);
  }

  /** True when the partner's certificate is in the CRL or on the fingerprint deny-list. */
  isDenied(p: PartnerIdentity): boolean {
    return this.revokedSerials.has(normalizeSerial(p.serial)) || this.deniedFingerprints.has(p.fingerprint256.toUpperCase());
  }

  get revokedCount(): number {
    return this.revokedSerials.size + this.deniedFingerprints.size;
  }
}

/**
 * Throws unless `crl` is signed by a CA of TLS_CA (same subject, signature verifies with its key) and is current:
 * OpenSSL looks CRLs up by issuer and, with a CRL configured, refuses every client whose CA has no valid,
 * current CRL, so a CRL from elsewhere or past its nextUpdate would lock every partner out.
 */
async function checkCrl(crl: x509.X509Crl, caCerts: readonly x509.X509Certificate[], files: TlsFiles, now: Date): Promise<void> {
  const where = `the CRL in ${files.crl} (issuer ${crl.issuer})`;
  let verified = false;
  for (const caCert of caCerts) {
    if (caCert.subject !== crl.issuer) continue;
    // OpenSSL takes a CRL only from an issuer whose key usage (when it has one) includes cRLSign.
    const ku = caCert.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.cRLSign) === 0) {
      throw new Error(`${where}: its CA certificate in ${files.ca} may not sign CRLs (key usage without cRLSign); OpenSSL would refuse every handshake (TLS_CA, TLS_CRL)`);
    }
    try {
      if (await crl.verify({ publicKey: caCert.publicKey })) verified = true;
    } catch {
      // an algorithm the CA's key cannot verify: not this CA's signature
    }
    if (verified) break;
  }
  if (!verified) throw new Error(`${where} is not signed by a CA in ${files.ca}; a CRL from another CA would make every handshake fail (TLS_CRL, TLS_CA)`);
  if (crl.thisUpdate > now) throw new Error(`${where} is not valid before ${crl.thisUpdate.toISOString()} (thisUpdate); OpenSSL would refuse every handshake (TLS_CRL)`);
  if (crl.nextUpdate && crl.nextUpdate < now) throw new Error(`${where} is past its nextUpdate ${crl.nextUpdate.toISOString()}; OpenSSL would refuse every handshake: publish a fresh CRL (TLS_CRL)`);
}
