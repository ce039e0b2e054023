import type { Logger } from '../log.ts';

/**
 * SIGINT/SIGTERM: `close()` with a hard-exit timer, so a stuck close never keeps the process alive; exit 0 when
 * it finished. SIGHUP: `reload()` (TLS files). Used by a single gateway, a cluster worker and the primary.
 */
export function onSignals(log: Logger, shutdownTimeoutMs: number, handlers: { close(): Promise<void>; reload?(): void }): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const hard = setTimeout(() => {
      log.error({ timeoutMs: shutdownTimeoutMs }, 'graceful shutdown timed out; exiting');
      process.exit(1);
    }, shutdownTimeoutMs);
    hard.unref();
    handlers.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading TLS certificates, CRL and deny-list');
    handlers.reload?.();
  });
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
