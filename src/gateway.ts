import type { PartitionMap } from './db/partition-map.ts';
import cluster from 'node:cluster';
import type pg from 'pg';
import type { Grants } from './access/grants.ts';
import type { Config } from './config/config.ts';
import { openDatabase } from './db/database.ts';
import type { Hub } from './hub/hub.ts';
import { Closers } from './lifecycle/closers.ts';
import type { Listener } from './listen/listener.ts';
import type { Logger } from './log.ts';
import { healthReport, isReady, startGatewayOps, type HealthSources } from './ops/gateway-ops.ts';
import { Metrics } from './ops/metrics.ts';
import { processStats } from './ops/process-stats.ts';
import { startPartnerPort } from './partner-port.ts';
import type { Feed } from './stream/feed.ts';
import { startLive } from './stream/live.ts';
import { ReplaySlots } from './stream/replay-slots.ts';
import type { HandshakeGuard } from './tls/handshake-guard.ts';
import { ensureDevCertificates, startTls } from './tls/tls-setup.ts';
import type { StreamServer } from './ws/stream-server.ts';

/** A running gateway: HTTPS REST and the WebSocket stream on one port, plus the ops port. */
export interface Gateway {
  /** https://host:port of the listening server (host as reachable locally). */
  readonly url: string;
  readonly port: number;
  /** Port of /healthz and /readyz (undefined when OPS_ENABLED=false). */
  readonly opsPort: number | undefined;
  /** The database URL in use (embedded or DATABASE_URL). */
  readonly databaseUrl: string;
  readonly embedded: boolean;
  readonly pool: pg.Pool;
  readonly feed: Feed;
  /** Which partitions the stream reads directly (sql/010). */
  readonly partitions: PartitionMap;
  readonly hub: Hub;
  readonly listener: Listener;
  readonly grants: Grants;
  /** Resumes replaying now, in all and per partner. */
  readonly replays: ReplaySlots;
  /** Re-reads the TLS files (CA, certificate, key, CRL, deny-list) without dropping clients; false if unusable. */
  reloadTls(): Promise<boolean>;
  readonly stream: StreamServer;
  /** Connections still in the TLS handshake, capped in all and per address. */
  readonly handshakes: HandshakeGuard;
  /** Prometheus metrics of this process (a cluster worker hands its registry to the primary's aggregator). */
  readonly metrics: Metrics;
  /** This process's /readyz report (also what a cluster worker answers its primary). */
  health(): ReturnType<typeof healthReport>;
  /** Stops accepting, tells stream clients to reconnect elsewhere, and closes everything in reverse order. */
  close(): Promise<void>;
}

/**
 * The gateway as a composition of parts that each open and close their own resources, in this order: the
 * database (embedded server, pools, migrations), the live path (LISTEN -> feed -> hub, the /latest store), TLS,
 * the partner port (REST + stream), the ops port. Nothing here owns the process (see server.ts).
 */
export async function createGateway(config: Config, log: Logger): Promise<Gateway> {
  const closers = new Closers(log);
  try {
    const db = closers.add(await openDatabase(config, log));
    const live = closers.add(await startLive(config, db, log));
    await ensureDevCertificates(config, db.pool, log);
    let stream: StreamServer | undefined;
    const tls = closers.add(
      await startTls(config, log, (material) => {
        for (const s of stream?.sessions() ?? []) if (material.isDenied(s.partner)) s.close('SLUICE_ERR_CERT_REVOKED', 'this client certificate was revoked');
      }),
    );
    // The database answers as far as the feed knows: false after a failed read, true again after a good one.
    let dbOk = true;
    live.feed.on('error', () => (dbOk = false));
    live.feed.on('batch', () => (dbOk = true));
    const replays = new ReplaySlots(config.REPLAY_MAX_CONCURRENT, config.REPLAY_MAX_PER_PARTNER, config.REPLAY_WAIT_MS);
    let handshakes: HandshakeGuard | undefined;
    const metrics = new Metrics({
      ...(cluster.isWorker && cluster.worker ? { worker: cluster.worker.id } : {}),
      pool: db.pool,
      streamPartners: function* () {
        for (const s of stream?.sessions() ?? []) yield s.partner.cn;
      },
      hubStats: () => live.hub.stats,
      listenerReconnects: () => live.listener.reconnects,
      feedStats: () => live.feed.stats,
      replays: () => replays.running,
      tlsDegraded: () => tls.degraded !== undefined,
      pendingHandshakes: () => handshakes?.pending ?? 0,
      listenerUp: () => live.listener.state === 'listening',
      ready: () => isReady({ databaseOk: () => dbOk, listenerState: () => live.listener.state }),
      tlsExpiry: () => ({ serverCertificate: tls.current.serverNotAfter, caCertificate: tls.current.caNotAfter, crlNextUpdate: tls.current.crlNextUpdate }),
    });
    live.observe({
      published: (notifyToSend, publish) => {
        if (notifyToSend !== undefined) metrics.notifyToSend.observe(notifyToSend); // not for reads the poll timer found
        metrics.publish.observe(publish);
      },
      read: (seconds) => metrics.feedRead.observe(seconds),
    });
    const port = closers.add(await startPartnerPort(config, { db, live, tls, replays, metrics, log }));
    stream = port.stream;
    handshakes = port.handshakes;

    const stats = processStats();
    const sources: HealthSources = {
      databaseOk: () => dbOk,
      listenerState: () => live.listener.state,
      listenerReconnects: () => live.listener.reconnects,
      tlsDegraded: () => tls.degraded,
      streamClients: () => port.stream.clients,
      replays: () => replays.running,
      pendingHandshakes: () => port.handshakes.pending,
      process: stats,
    };
    const health = () => healthReport(sources);
    const ops = config.OPS_ENABLED ? closers.add(await startGatewayOps(config, health, metrics)) : undefined;

    const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
    return {
      url: `https://${host.includes(':') ? `[${host}]` : host}:${port.port}`,
      port: port.port,
      opsPort: ops?.port,
      databaseUrl: db.url,
      embedded: db.embedded,
      pool: db.pool,
      feed: live.feed,
      partitions: db.partitions,
      hub: live.hub,
      listener: live.listener,
      stream: port.stream,
      handshakes: port.handshakes,
      grants: live.grants,
      replays,
      metrics,
      health,
      reloadTls: () => tls.reload('requested'),
      close: () => closers.closeAll(),
    };
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}
