import { constants as cryptoConstants } from 'node:crypto';
import type { ServerOptions } from 'node:https';
import type { TlsMaterial } from './tls-material.ts';

/**
 * HTTPS options that make a client certificate mandatory: no certificate, one from another CA, an expired one,
 * or one in the CRL fails the handshake itself (rejectUnauthorized), before any HTTP is spoken; and a handshake
 * not finished within `handshakeTimeoutMs` closes the connection.
 */
export function tlsServerOptions(material: TlsMaterial, opts: { sessionTickets: boolean; handshakeTimeoutMs?: number }): ServerOptions {
  return {
    ...material.options,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    // Node's default (120 s) lets a peer that sends nothing hold a connection slot for two minutes. The timer
    // runs from the TCP connection to the end of the handshake and is not reset by bytes received (a ClientHello
    // sent a byte at a time times out as well); setSecureContext() on reload leaves it in place.
    // The HandshakeGuard closes (and counts) a handshake at `handshakeTimeoutMs` from its TCP connection, queue
    // time included; the server's own timer, which starts later (when the TLS socket is made), is a backstop a
    // second behind it, so the two never race for the same connection (one of them then went uncounted).
    ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeout: opts.handshakeTimeoutMs + 1000 } : {}),
    // Without tickets a TLS 1.3 connection holds ~13 KiB less (OpenSSL keeps the issued tickets' state: 41 vs
    // 56 KiB per connection in `npm run bench:memory`), and no session from before a revocation can ever be resumed. The cost: a
    // full handshake on every reconnect, which with ECDSA P-256 keys is cheap.
    ...(opts.sessionTickets ? {} : { secureOptions: cryptoConstants.SSL_OP_NO_TICKET }),
  };
}
