import client from 'prom-client';
import type { Config } from '../config/config.ts';
import { createGateway } from '../gateway.ts';
import { onSignals } from '../lifecycle/signals.ts';
import type { Logger } from '../log.ts';
import { isHealthRequest, type HealthReply } from './messages.ts';

/**
 * One cluster worker: a whole gateway (its own LISTEN, feed, latest store and sessions) on the port the primary
 * shares, without an ops port of its own: the primary asks it for its /readyz report and its metrics over IPC.
 */
export async function runWorker(config: Config, log: Logger): Promise<void> {
  const gateway = await createGateway(config, log);
  // prom-client answers the primary's AggregatorRegistry from these registries (its listener is installed by
  // constructing one here).
  new client.AggregatorRegistry();
  client.AggregatorRegistry.setRegistries([gateway.metrics.registry]);
  process.on('message', (m: unknown) => {
    if (!isHealthRequest(m)) return;
    const reply: HealthReply = { type: 'sluice:health', id: m.id, pid: process.pid, health: gateway.health() };
    process.send?.(reply);
  });
  // The IPC channel closes when the primary is gone (killed): drain like on SIGTERM instead of serving orphaned.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  onSignals(log, config.SHUTDOWN_TIMEOUT_MS, { close: () => gateway.close(), reload: () => void gateway.reloadTls() });
  log.info({ pid: process.pid, port: gateway.port }, 'worker listening');
}
