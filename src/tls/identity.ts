import type { TLSSocket } from 'node:tls';

/** Who is on the other end of a TLS connection, from the verified client certificate. */
export interface PartnerIdentity {
  /** Subject common name: the partner identity used in logs and grants. */
  readonly cn: string;
  /** SHA-256 fingerprint of the client certificate, colon-separated hex as Node prints it. */
  readonly fingerprint256: string;
  /** Certificate serial number (hex). */
  readonly serial: string;
}

const cache = new WeakMap<TLSSocket, PartnerIdentity | null>();

/**
 * The partner identity of a socket, or undefined when the connection has no verified, non-empty client
 * certificate. `authorized` alone is not enough: a resumed TLS 1.3 session can report authorized with an empty
 * peer certificate, so the certificate itself must be present too. Cached per socket (keep-alive requests and
 * the WebSocket upgrade share it).
 */
export function identityOf(socket: TLSSocket): PartnerIdentity | undefined {
  const hit = cache.get(socket);
  if (hit !== undefined) return hit ?? undefined;
  let id: PartnerIdentity | null = null;
  if (socket.authorized === true && typeof socket.getPeerCertificate === 'function') {
    const cert = socket.getPeerCertificate();
    const cnRaw = cert?.subject?.CN;
    const cn = Array.isArray(cnRaw) ? cnRaw[0] : cnRaw;
    if (cert && cert.raw && cert.raw.length > 0 && typeof cn === 'string' && cn.length > 0) {
      id = { cn, fingerprint256: cert.fingerprint256, serial: cert.serialNumber };
    }
  }
  cache.set(socket, id);
  return id ?? undefined;
}
