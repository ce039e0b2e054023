import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';

/** Files the HTTPS/WSS server is built from. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

function read(file: string, what: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the ${what} ${file} (${(err as NodeJS.ErrnoException).code}); set ${setting} or run "npm run certs"`, { cause: err });
  }
}

/**
 * HTTPS options that make a client certificate mandatory: no certificate, one from another CA, or an expired one
 * fails the handshake itself (rejectUnauthorized), before any HTTP is spoken.
 */
export function tlsServerOptions(files: TlsFiles): ServerOptions {
  return {
    ca: read(files.ca, 'CA certificate', 'TLS_CA'),
    cert: read(files.cert, 'server certificate', 'TLS_CERT'),
    key: read(files.key, 'server key', 'TLS_KEY'),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  };
}
