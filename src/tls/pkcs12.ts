import { createHash, createHmac, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { bmpString, explicit, integer, nul, octets, oid, seq, set } from './der.ts';

/**
 * Writes a password-protected PKCS#12 (.p12) bundle of a private key (any type Node can export, so ECDSA too)
 * and its certificate chain, for browsers and Java keystores. The key is PBES2-encrypted (PBKDF2-SHA256,
 * AES-256-CBC) by Node itself; the file's integrity MAC is HMAC-SHA256 with the RFC 7292 key derivation.
 * Browsers and OpenSSL 3 read this format; node-forge can only write RSA keys, hence this small writer.
 */
export function createPkcs12(opts: { keyPem: string; certPems: readonly string[]; password: string; friendlyName: string }): Buffer {
  const OID = {
    data: '1.2.840.113549.1.7.1',
    shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
    certBag: '1.2.840.113549.1.12.10.1.3',
    x509Certificate: '1.2.840.113549.1.9.22.1',
    friendlyName: '1.2.840.113549.1.9.20',
    localKeyId: '1.2.840.113549.1.9.21',
    sha256: '2.16.840.1.101.3.4.2.1',
  };
  const iterations = 2048;
  const key = createPrivateKey(opts.keyPem);
  const encryptedKey = key.export({ format: 'der', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: opts.password });
  const certs = opts.certPems.map((p) => new X509Certificate(p).raw);
  const leaf = certs[0];
  if (!leaf) throw new TypeError('createPkcs12 needs at least the leaf certificate');
  const localKeyId = createHash('sha1').update(leaf).digest();
  const leafAttrs = set(
    seq(oid(OID.friendlyName), set(bmpString(opts.friendlyName))),
    seq(oid(OID.localKeyId), set(octets(localKeyId))),
  );

  const certBags = certs.map((der, i) =>
    seq(
      oid(OID.certBag),
      explicit(0, seq(oid(OID.x509Certificate), explicit(0, octets(der)))),
      ...(i === 0 ? [leafAttrs] : []),
    ),
  );
  const keyBag = seq(oid(OID.shroudedKeyBag), explicit(0, encryptedKey), leafAttrs);
  const dataContentInfo = (safeContents: Buffer) => seq(oid(OID.data), explicit(0, octets(safeContents)));
  const authSafe = seq(dataContentInfo(seq(...certBags)), dataContentInfo(seq(keyBag)));

  const salt = randomBytes(16);
  const macKey = pkcs12Kdf(opts.password, salt, 3, iterations, 32);
  const mac = createHmac('sha256', macKey).update(authSafe).digest();
  const macData = seq(seq(seq(oid(OID.sha256), nul()), octets(mac)), octets(salt), integer(iterations));
  return seq(integer(3), dataContentInfo(authSafe), macData);
}

/** RFC 7292 appendix B.2 key derivation with SHA-256 (u = 32, v = 64). */
function pkcs12Kdf(password: string, salt: Buffer, id: number, iterations: number, n: number): Buffer {
  const u = 32;
  const v = 64;
  const pass = Buffer.concat([Buffer.from(password, 'utf16le').swap16(), Buffer.alloc(2)]);
  const fill = (b: Buffer) => {
    if (b.length === 0) return Buffer.alloc(0);
    const len = v * Math.ceil(b.length / v);
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = b[i % b.length] as number;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fill(salt), fill(pass)]);
  const out: Buffer[] = [];
  for (let produced = 0; produced < n; produced += u) {
    let A = createHash('sha256').update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) A = createHash('sha256').update(A).digest();
    out.push(A);
    const B = fill(A);
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = (I[j + k] as number) + (B[k] as number) + carry;
        I[j + k] = sum & 0xff;
        carry = sum >>> 8;
      }
    }
  }
  return Buffer.concat(out).subarray(0, n);
}
