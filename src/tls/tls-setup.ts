import { existsSync } from 'node:fs';
import type pg from 'pg';
import { grant } from '../access/grant-store.ts';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { certPaths, DEMO_PARTNER, ensureDevCerts } from './certificates.ts';
import { tlsServerOptions } from './server-options.ts';
import type { TlsMaterial } from './tls-material.ts';
import { TlsReloader } from './tls-reloader.ts';

/**
 * With TLS_DEV_CERTS (the default) and no certificate files yet: a dev CA, server and demo-partner certificate,
 * and the demo partner granted every SLU, so the printed curl command works on first run. A real partner is
 * granted with `npm run partners`.
 */
export async function ensureDevCertificates(config: Config, pool: pg.Pool, log: Logger): Promise<void> {
  const paths = certPaths(config.TLS_CA, config.TLS_CERT, config.TLS_KEY);
  if (!config.TLS_DEV_CERTS || (existsSync(paths.ca) && existsSync(paths.cert) && existsSync(paths.key))) return;
  const written = await ensureDevCerts(paths);
  if (written.length) log.warn({ written }, 'created development certificates (not for production)');
  if (written.some((f) => f.endsWith(`${DEMO_PARTNER}.crt`))) {
    await grant(pool, DEMO_PARTNER, null);
    log.warn({ partner: DEMO_PARTNER }, 'granted the demo partner every SLU (development certificates)');
  }
}

/** The HTTPS server's TLS options from the config: built once at start and again on every reload. */
export function serverTlsOptions(config: Config): (m: TlsMaterial) => ReturnType<typeof tlsServerOptions> {
  return (m) => tlsServerOptions(m, { sessionTickets: config.TLS_SESSION_TICKETS, handshakeTimeoutMs: config.TLS_HANDSHAKE_TIMEOUT_MS });
}

/** Loads and checks the TLS files (start-up stops on a bad one) and keeps them current (SIGHUP, file changes). */
export function startTls(config: Config, log: Logger, onReload: (m: TlsMaterial) => void): Promise<TlsReloader> {
  return TlsReloader.start({ ca: config.TLS_CA, cert: config.TLS_CERT, key: config.TLS_KEY, crl: config.TLS_CRL, denylist: config.TLS_DENYLIST }, log, {
    contextOptions: serverTlsOptions(config),
    watch: config.TLS_WATCH,
    warnDays: config.TLS_EXPIRY_WARN_DAYS,
    onReload,
  });
}
