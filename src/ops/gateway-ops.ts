import type { Config } from '../config/config.ts';
import type { Health } from './ops-server.ts';
import { startOpsServer } from './ops-server.ts';
import type { Metrics } from './metrics.ts';

/** What /readyz reports for one gateway process. */
export interface HealthSources {
  /** False after a failed feed read, true again after a good one. */
  databaseOk(): boolean;
  listenerState(): string;
  listenerReconnects(): number;
  /** Why TLS is degraded, or undefined. */
  tlsDegraded(): string | undefined;
  streamClients(): number;
  replays(): number;
  pendingHandshakes(): number;
  process(): Record<string, number>;
}

/** What /readyz's status (and sluice_ready) says: the database answers and LISTEN is in place. */
export function isReady(h: Pick<HealthSources, 'databaseOk' | 'listenerState'>): boolean {
  return h.databaseOk() && h.listenerState() === 'listening';
}

/**
 * /readyz of one process: ready only while the database answers and LISTEN is in place. TLS is reported but not
 * part of `ready`: the previous, good material still serves, and a bad file pushed to every gateway at once
 * must not take them all out of the load balancer.
 */
export function healthReport(h: HealthSources): Health {
  const tls = h.tlsDegraded();
  const listener = h.listenerState();
  return {
    ready: isReady(h),
    database: h.databaseOk() ? 'ok' : 'unreachable',
    listener,
    listenerReconnects: h.listenerReconnects(),
    tls: tls === undefined ? 'ok' : 'degraded',
    ...(tls === undefined ? {} : { tlsReason: tls }),
    streamClients: h.streamClients(),
    replays: h.replays(),
    pendingHandshakes: h.pendingHandshakes(),
    process: h.process(),
  };
}

/** The ops port (OPS_HOST:OPS_PORT): /healthz, /readyz from `health`, /metrics from `metrics`. */
export function startGatewayOps(config: Config, health: () => Health | Promise<Health>, metrics: Pick<Metrics, 'text' | 'contentType'>) {
  return startOpsServer({
    host: config.OPS_HOST,
    port: config.OPS_PORT,
    health,
    extra: (req, res) => {
      if ((req.url ?? '').split('?')[0] !== '/metrics') return false;
      metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}`),
      );
      return true;
    },
  });
}
