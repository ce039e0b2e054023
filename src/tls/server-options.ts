import type { ServerOptions } from 'node:https';
import type { TlsMaterial } from './tls-material.ts';

/**
 * HTTPS options that make a client certificate mandatory: no certificate, one from another CA, an expired one,
 * or one in the CRL fails the handshake itself (rejectUnauthorized), before any HTTP is spoken.
 */
export function tlsServerOptions(material: TlsMaterial): ServerOptions {
  return {
    ...material.options,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  };
}
