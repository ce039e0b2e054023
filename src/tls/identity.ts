import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { isPinSpelling } from '../access/grants.ts';
import { SluiceError } from '../errors.ts';

/** Who is on the other end of a TLS connection, from the verified client certificate. */
export interface PartnerIdentity {
  /** Subject common name: the partner identity used in logs and grants. */
  readonly cn: string;
  /** SHA-256 fingerprint of the client certificate, colon-separated hex as Node prints it. */
  readonly fingerprint256: string;
  /** Certificate serial number (hex). */
  readonly serial: string;
}

/** A certificate is a partner, or it is refused with a catalogue code and a reason the partner can act on. */
export type IdentityCheck =
  | { readonly ok: true; readonly identity: PartnerIdentity }
  | {
      readonly ok: false;
      readonly code: 'SLUICE_ERR_NO_CLIENT_CERT' | 'SLUICE_ERR_CERT_IDENTITY';
      readonly reason: string;
      /** Of the refused certificate, for the log (absent when there is no certificate). */
      readonly fingerprint256?: string;
    };

/** RFC 5280's ub-common-name: CAs enforce it, and it keeps names printable in logs and metrics labels. */
export const CN_MAX_CHARS = 64;

/**
 * Letters, marks, digits, punctuation, symbols and the plain space. Everything else (C0/C1 controls such as NUL,
 * format characters such as bidi overrides and zero-width joiners, line separators, other spaces, surrogates,
 * private-use and unassigned code points) can hide or forge text in logs, or cannot be stored in PostgreSQL.
 */
const CN_CHAR = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** Why `cn` cannot name a partner, or undefined when it can. */
export function commonNameProblem(cn: string): string | undefined {
  if (cn.length === 0) return 'its subject CN is empty';
  if (isPinSpelling(cn)) return 'its subject CN is spelled like a certificate pin (sha256:…); pins name one certificate by its fingerprint and can never be a CN';
  const chars = [...cn];
  if (chars.length > CN_MAX_CHARS) return `its subject CN is ${chars.length} characters long; at most ${CN_MAX_CHARS} are accepted`;
  const bad = chars.findIndex((c) => !CN_CHAR.test(c));
  if (bad >= 0) {
    const code = (chars[bad] as string).codePointAt(0) ?? 0;
    return `its subject CN contains U+${code.toString(16).toUpperCase().padStart(4, '0')} at character ${bad + 1}; a CN may hold letters, digits, punctuation, symbols and plain spaces, no control or invisible characters`;
  }
  if (cn !== cn.trim()) return 'its subject CN begins or ends with a space';
  return undefined;
}

/**
 * Why the subject of this DER certificate cannot name a partner: it must hold exactly one CN, alone in its RDN.
 * OpenSSL (and so getPeerCertificate) flattens the subject and keeps repeated CNs in DER order, so the RDN
 * structure is read from the certificate itself.
 */
function subjectProblem(cert: x509.X509Certificate): string | undefined {
  let cns = 0;
  for (const rdn of cert.subjectName.toJSON()) {
    const here = rdn.CN?.length ?? 0;
    if (here === 0) continue;
    const attributes = Object.values(rdn).reduce((n, values) => n + values.length, 0);
    if (attributes > 1) return 'its subject CN is part of a multi-valued RDN (CN=…+…); a partner certificate has exactly one CN, in an RDN of its own';
    cns += here;
  }
  if (cns === 0) return 'its subject has no CN; a partner certificate names its partner in exactly one CN';
  if (cns > 1) return `its subject has ${cns} CNs; a partner certificate names its partner in exactly one CN`;
  return undefined;
}

/** Why this certificate cannot be a partner (see identityOf), or undefined when it can. */
function certificateProblem(raw: PeerCertificate['raw'], cn: unknown): string | undefined {
  let parsed: x509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(raw);
  } catch {
    return 'it cannot be parsed';
  }
  // A CA certificate signed by the partner CA passes OpenSSL's client checks; as a partner it could later sign
  // certificates of its own, so only end-entity certificates are partners.
  const usage = parsed.getExtension(x509.KeyUsagesExtension);
  if (new X509Certificate(raw).ca || (usage && (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0)) {
    return 'it is a CA certificate (basicConstraints CA:TRUE or keyUsage keyCertSign)';
  }
  const structure = subjectProblem(parsed);
  if (structure) return structure;
  if (typeof cn !== 'string') return 'its subject CN cannot be read';
  return commonNameProblem(cn);
}

/**
 * Verdicts by certificate fingerprint: parsing a certificate costs about half a millisecond, and partners
 * reconnect with the same few certificates. A verdict depends on the certificate's bytes alone, so it never goes
 * stale; the oldest is dropped beyond VERDICTS_MAX.
 */
const verdicts = new Map<string, string | undefined>();
const VERDICTS_MAX = 10_000;

function verdictOf(raw: PeerCertificate['raw'], fingerprint256: string, cn: unknown): string | undefined {
  if (verdicts.has(fingerprint256)) return verdicts.get(fingerprint256);
  const problem = certificateProblem(raw, cn);
  if (verdicts.size >= VERDICTS_MAX) verdicts.delete(verdicts.keys().next().value as string);
  verdicts.set(fingerprint256, problem);
  return problem;
}

function examine(socket: TLSSocket): IdentityCheck {
  const missing = { ok: false, code: 'SLUICE_ERR_NO_CLIENT_CERT', reason: new SluiceError('SLUICE_ERR_NO_CLIENT_CERT').message } as const;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return missing;
  const cert = socket.getPeerCertificate();
  // `authorized` alone is not enough: a resumed TLS 1.3 session can report authorized with an empty certificate.
  if (!cert || !cert.raw || cert.raw.length === 0) return missing;
  const cn: unknown = cert.subject?.CN;
  const problem = verdictOf(cert.raw, cert.fingerprint256, cn);
  if (problem !== undefined) {
    return {
      ok: false,
      code: 'SLUICE_ERR_CERT_IDENTITY',
      reason: `this client certificate cannot identify a partner: ${problem}; ask the operator for a new one`,
      fingerprint256: cert.fingerprint256,
    };
  }
  return { ok: true, identity: { cn: cn as string, fingerprint256: cert.fingerprint256, serial: cert.serialNumber } };
}

const cache = new WeakMap<TLSSocket, IdentityCheck>();

/**
 * The partner identity of a socket, or why it has none: no verified, non-empty client certificate
 * (SLUICE_ERR_NO_CLIENT_CERT), or a certificate that cannot name a partner (SLUICE_ERR_CERT_IDENTITY: not exactly
 * one clean CN, or a CA). The REST hook and the stream upgrade both ask here, so they refuse alike. Cached per
 * socket (keep-alive requests and the WebSocket upgrade share it).
 */
export function identityOf(socket: TLSSocket): IdentityCheck {
  let check = cache.get(socket);
  if (!check) {
    check = examine(socket);
    cache.set(socket, check);
  }
  return check;
}

/** The error a refused identity is answered with (HTTP 401 on REST and at the upgrade). */
export function identityError(check: Extract<IdentityCheck, { ok: false }>): SluiceError {
  return new SluiceError(check.code, check.reason);
}
