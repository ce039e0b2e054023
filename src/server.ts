import { ConfigError, loadConfig } from './config/config.ts';
import { createGateway } from './gateway.ts';
import { createLogger } from './log.ts';

/**
 * Owns the process: reads the config, starts the gateway, prints how to reach it, and drains on SIGINT/SIGTERM
 * with a hard-exit timer so a stuck close never keeps the process alive.
 */
export async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(err.message + '\n');
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL);
  let gateway;
  try {
    gateway = await createGateway(config, log);
  } catch (err) {
    log.fatal({ err }, 'gateway failed to start');
    process.exit(1);
  }
  const base = `${gateway.url}${config.BASE_PATH}`;
  log.info({ url: base, databaseUrl: gateway.databaseUrl }, 'sluice is listening');
  if (process.stdout.isTTY || process.env.SLUICE_BANNER !== '0') {
    const c = 'certs/clients/demo';
    process.stderr.write(
      `\nsluice is up on ${base}\n` +
        `  database: ${gateway.databaseUrl}${gateway.embedded ? '  (embedded; psql "$URL" works)' : ''}\n` +
        `  try it:   curl --cacert ${config.TLS_CA} --cert ${c}.crt --key ${c}.key '${base}/latest'\n\n`,
    );
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const hard = setTimeout(() => {
      log.error({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, 'graceful shutdown timed out; exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    hard.unref();
    gateway
      .close()
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      });
  };
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading TLS certificates, CRL and deny-list');
    void gateway.reloadTls(); // a refused reload is logged and shown in /readyz and sluice_tls_degraded
  });
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
