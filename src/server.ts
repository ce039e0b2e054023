import cluster from 'node:cluster';
import { runPrimary } from './cluster/primary.ts';
import { runWorker } from './cluster/worker.ts';
import { ConfigError, loadConfig, type Config } from './config/config.ts';
import { createGateway } from './gateway.ts';
import { onSignals } from './lifecycle/signals.ts';
import { createLogger } from './log.ts';

/**
 * Owns the process: reads the config, starts the gateway (one process, or with WORKERS > 1 a cluster primary
 * and its workers), prints how to reach it, and drains on SIGINT/SIGTERM with a hard-exit timer.
 */
export async function main(): Promise<void> {
  let config: Config;
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
  try {
    if (config.WORKERS > 1 && cluster.isWorker) return await runWorker(config, log);
    if (config.WORKERS > 1) {
      const primary = await runPrimary(config, log);
      return banner(config, `https://${displayHost(config)}:${primary.port}`, primary.databaseUrl, primary.embedded, log);
    }
    const gateway = await createGateway(config, log);
    onSignals(log, config.SHUTDOWN_TIMEOUT_MS, {
      close: () => gateway.close(),
      reload: () => void gateway.reloadTls(), // a refused reload is logged and shown in /readyz and sluice_tls_degraded
    });
    banner(config, gateway.url, gateway.databaseUrl, gateway.embedded, log);
  } catch (err) {
    log.fatal({ err }, 'gateway failed to start');
    process.exit(1);
  }
}

function displayHost(config: Config): string {
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
  return host.includes(':') ? `[${host}]` : host;
}

function banner(config: Config, url: string, databaseUrl: string, embedded: boolean, log: ReturnType<typeof createLogger>): void {
  const base = `${url}${config.BASE_PATH}`;
  log.info({ url: base, databaseUrl, workers: config.WORKERS }, 'sluice is listening');
  if (process.stdout.isTTY || process.env.SLUICE_BANNER !== '0') {
    const c = 'certs/clients/demo';
    process.stderr.write(
      `\nsluice is up on ${base}${config.WORKERS > 1 ? ` (${config.WORKERS} worker processes)` : ''}\n` +
        `  database: ${databaseUrl}${embedded ? '  (embedded; psql "$URL" works)' : ''}\n` +
        `  try it:   curl --cacert ${config.TLS_CA} --cert ${c}.crt --key ${c}.key '${base}/latest'\n\n`,
    );
  }
}
