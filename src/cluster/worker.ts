import type { Config } from '../config/config.ts';
import { createGateway } from '../gateway.ts';
import { onSignals } from '../lifecycle/signals.ts';
import type { Logger } from '../log.ts';
import { isHealthRequest, isMetricsRequest, type HealthReply, type MetricsReply } from './messages.ts';

/**
 * One cluster worker: a whole gateway (its own LISTEN, feed, latest store and sessions) on the port the primary
 * shares, without an ops port of its own: the primary asks it for its /readyz report and its metrics over IPC
 * (its own small protocol, not prom-client's cluster module, which fails the whole scrape after 5 s when one
 * worker is still starting).
 */
export async function runWorker(config: Config, log: Logger): Promise<void> {
  // Answer the primary from the first moment, also while starting (not ready, no metrics yet).
  let gateway: Awaited<ReturnType<typeof createGateway>> | undefined;
  process.on('message', (m: unknown) => {
    if (isHealthRequest(m)) {
      const health = gateway?.health() ?? { ready: false, starting: true };
      const reply: HealthReply = { type: 'sluice:health', id: m.id, pid: process.pid, health };
      process.send?.(reply);
    } else if (isMetricsRequest(m)) {
      const registry = gateway?.metrics.registry;
      void (registry ? registry.getMetricsAsJSON() : Promise.resolve([])).then(
        (metrics) => process.send?.({ type: 'sluice:metrics', id: m.id, metrics } satisfies MetricsReply),
        () => process.send?.({ type: 'sluice:metrics', id: m.id, metrics: [] } satisfies MetricsReply),
      );
    }
  });
  gateway = await createGateway(config, log);
  const started = gateway;
  // The IPC channel closes when the primary is gone (killed): drain like on SIGTERM instead of serving orphaned.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  onSignals(log, config.SHUTDOWN_TIMEOUT_MS, { close: () => started.close(), reload: () => void started.reloadTls() });
  log.info({ pid: process.pid, port: started.port }, 'worker listening');
}
