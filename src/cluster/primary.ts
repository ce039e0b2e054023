import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';
import type { Config } from '../config/config.ts';
import { migrateOptions, resolveDatabaseUrl } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { createPool } from '../db/pool.ts';
import { onSignals } from '../lifecycle/signals.ts';
import type { Logger } from '../log.ts';
import { startGatewayOps } from '../ops/gateway-ops.ts';
import type { Health } from '../ops/ops-server.ts';
import { ensureDevCertificates } from '../tls/tls-setup.ts';
import { isHealthReply, isMetricsReply, type HealthReply, type MetricsReply } from './messages.ts';

/** What the primary tells the process owner once every worker listens. */
export interface Primary {
  /** The port the workers share (PORT, or the one picked for PORT=0). */
  readonly port: number;
  readonly databaseUrl: string;
  readonly embedded: boolean;
}

/**
 * The cluster primary (WORKERS > 1): starts the embedded database if there is no DATABASE_URL, migrates, makes
 * dev certificates, then forks WORKERS gateway processes that share the port (node:cluster hands each accepted
 * connection to a worker in turn). A worker that dies is replaced (its clients resume on the others with their
 * cursors: a cursor is a database snapshot, valid in every worker). The primary serves the ops port: /readyz is
 * ready only when every worker is, /metrics adds up the workers' metrics (prom-client's AggregatorRegistry).
 * SIGTERM drains every worker (each closes its streams with 1012) and exits when they have.
 */
export async function runPrimary(config: Config, log: Logger): Promise<Primary> {
  const { url, embedded } = await resolveDatabaseUrl(config, log);
  const pool = createPool({ connectionString: url, max: 2, connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, queryTimeoutMs: 600_000 }, log);
  try {
    const applied = await migrate(pool, undefined, migrateOptions(config, log)); // once here, so the workers find nothing to do
    if (applied.length) log.info({ applied }, 'migrations applied');
    await ensureDevCertificates(config, pool, log);
  } finally {
    await pool.end();
  }

  // Workers get the database URL (the embedded server is the primary's), no ops port, and no banner.
  const env = { DATABASE_URL: url, OPS_ENABLED: 'false', SLUICE_BANNER: '0' };
  let stopping = false;
  let restartDelayMs = 250;
  const fork = (): Worker => cluster.fork(env);
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: restartDelayMs }, 'worker died; starting a replacement (its clients resume on the others)');
    setTimeout(fork, restartDelayMs).unref();
    restartDelayMs = Math.min(10_000, restartDelayMs * 2); // a worker that dies at once every time must not spin
  });
  cluster.on('listening', () => {
    // A worker that got as far as listening resets the back-off.
    restartDelayMs = 250;
  });
  let port = config.PORT;
  const listening = new Promise<void>((resolve) => {
    let n = 0;
    const onListening = (_w: Worker, address: { port: number }) => {
      port = address.port;
      if (++n === config.WORKERS) {
        cluster.off('listening', onListening);
        resolve();
      }
    };
    cluster.on('listening', onListening);
  });
  for (let i = 0; i < config.WORKERS; i++) fork();

  const ops = config.OPS_ENABLED
    ? await startGatewayOps(config, () => clusterHealth(config.WORKERS), { text: clusterMetrics, contentType: client.register.contentType })
    : undefined;

  onSignals(log, config.SHUTDOWN_TIMEOUT_MS, {
    async close() {
      stopping = true;
      const exits = Object.values(cluster.workers ?? {}).map((w) => new Promise<void>((r) => (w?.isDead() ? r() : w?.once('exit', () => r()))));
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
      await Promise.all(exits);
      await ops?.close();
      await embedded?.close();
    },
    reload() {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
    },
  });
  await listening;
  log.info({ workers: config.WORKERS, pid: process.pid }, 'every worker is listening');
  return { port, databaseUrl: url, embedded: embedded !== undefined };
}

let nextRequest = 0;

/** Sends `request` to every connected worker and collects the replies that come within `ms`. */
function askWorkers<T>(request: { type: string; id: number }, isReply: (m: unknown) => m is T & { id: number }, ms: number): Promise<T[]> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  return new Promise<T[]>((resolve) => {
    const got: T[] = [];
    const onMessage = (_w: Worker, m: unknown) => {
      if (!isReply(m) || m.id !== request.id) return;
      got.push(m);
      if (got.length === workers.length) finish();
    };
    const finish = () => {
      clearTimeout(timer);
      cluster.off('message', onMessage);
      resolve(got);
    };
    const timer = setTimeout(finish, ms);
    cluster.on('message', onMessage);
    for (const w of workers) w.send(request);
    if (workers.length === 0) finish();
  });
}

/**
 * The workers' metrics added up (prom-client's aggregate(): counters and histograms summed, gauges by their
 * aggregator). A worker that is starting answers with nothing and one that does not answer within a second is
 * left out: a restart makes the figures partial for a moment, never the scrape fail.
 */
async function clusterMetrics(): Promise<string> {
  const replies = await askWorkers<MetricsReply>({ type: 'sluice:metrics?', id: nextRequest++ }, isMetricsReply, 1000);
  const parts = replies.map((r) => r.metrics).filter((m) => m.length > 0) as Parameters<typeof client.AggregatorRegistry.aggregate>[0];
  return client.AggregatorRegistry.aggregate(parts).metrics();
}

/** Asks every worker for its /readyz report (1 s at most); ready only when all WORKERS answered ready. */
async function clusterHealth(expected: number): Promise<Health> {
  const replies = await askWorkers<HealthReply>({ type: 'sluice:health?', id: nextRequest++ }, isHealthReply, 1000);
  const ready = replies.length === expected && replies.every((r) => r.health.ready);
  const sum = (k: string) => replies.reduce((n, r) => n + (Number(r.health[k]) || 0), 0);
  const degraded = replies.find((r) => r.health.tls === 'degraded');
  return {
    ready,
    workers: { expected, answering: replies.length, ready: replies.filter((r) => r.health.ready).length },
    tls: degraded ? 'degraded' : 'ok',
    ...(degraded ? { tlsReason: degraded.health.tlsReason } : {}),
    streamClients: sum('streamClients'),
    replays: sum('replays'),
    pendingHandshakes: sum('pendingHandshakes'),
    perWorker: replies.map((r) => ({ pid: r.pid, ...r.health })),
  };
}
