import { existsSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { Config } from './config/config.ts';
import { latestPerSlu } from './db/latest.ts';
import { migrate } from './db/migrate.ts';
import { createPool } from './db/pool.ts';
import { startXidClock } from './db/xid-clock.ts';
import { ReplaySlots } from './stream/replay-slots.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.ts';
import { ReadingCache } from './format/reading-cache.ts';
import { Hub } from './hub/hub.ts';
import { LatestStore } from './hub/latest-store.ts';
import { Freshness } from './hub/freshness.ts';
import { Listener } from './listen/listener.ts';
import { Grants } from './access/grants.ts';
import { grant } from './access/grant-store.ts';
import { DEMO_PARTNER } from './tls/certificates.ts';
import type { Logger } from './log.ts';
import { startOpsServer } from './ops/ops-server.ts';
import { buildRestApp } from './rest/app.ts';
import { encodeCursor } from './stream/cursor.ts';
import { Feed } from './stream/feed.ts';
import { certPaths, ensureDevCerts } from './tls/certificates.ts';
import { tlsServerOptions } from './tls/server-options.ts';
import { TlsReloader } from './tls/tls-reloader.ts';
import { HandshakeGuard } from './tls/handshake-guard.ts';
import { processStats } from './ops/process-stats.ts';
import { Metrics } from './ops/metrics.ts';
import type { PartnerIdentity } from './tls/identity.ts';
import { createStreamServer, type StreamServer } from './ws/stream-server.ts';

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
  /** Stops accepting, tells stream clients to reconnect elsewhere, and closes everything in reverse order. */
  close(): Promise<void>;
}

/** Wires database, migrations, TLS, the feed, the hub and the servers. Nothing here owns the process (see server.ts). */
export async function createGateway(config: Config, log: Logger): Promise<Gateway> {
  const closers: Array<() => Promise<unknown> | unknown> = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err }, 'error while closing');
      }
    }
    closers.length = 0;
  };
  try {
    let databaseUrl = config.DATABASE_URL;
    let embedded: EmbeddedPostgres | undefined;
    if (!databaseUrl) {
      embedded = await startEmbeddedPostgres({
        dir: config.EMBEDDED_PG_DIR,
        port: config.EMBEDDED_PG_PORT,
        onLog: (line) => log.debug({ pg: line }, 'embedded postgres'),
      });
      const e = embedded;
      closers.push(() => e.close());
      databaseUrl = embedded.url;
      log.info({ databaseUrl, dataDir: config.EMBEDDED_PG_DIR, reused: embedded.reused }, 'embedded PostgreSQL ready');
    }

    const pool = createPool(
      { connectionString: databaseUrl, max: config.PG_POOL_MAX, connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, queryTimeoutMs: config.PG_QUERY_TIMEOUT_MS },
      log,
    );
    closers.push(() => pool.end());
    const applied = await migrate(pool);
    if (applied.length) log.info({ applied }, 'migrations applied');
    const clock = startXidClock(pool, log);
    closers.push(() => clock.close());
    // Resumes replay on connections of their own: however many partners resume at once, REST keeps its pool.
    const replayPool = createPool(
      { connectionString: databaseUrl, max: config.REPLAY_MAX_CONCURRENT, connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, queryTimeoutMs: config.PG_QUERY_TIMEOUT_MS, applicationName: 'sluice-replay' },
      log,
    );
    closers.push(() => replayPool.end());
    const replaySlots = new ReplaySlots(config.REPLAY_MAX_CONCURRENT, config.REPLAY_MAX_PER_PARTNER, config.REPLAY_WAIT_MS);

    // The feed starts at a snapshot; the latest store is then filled by a scan that sees at least as much, and
    // kept current by every batch after it (a reading seen twice is harmless).
    const cache = new ReadingCache(config.READING_CACHE_SIZE);
    const feed = new Feed(pool, cache, log, { pageRows: config.FEED_PAGE_ROWS, pollIntervalMs: config.FEED_POLL_INTERVAL_MS });
    const start = await feed.start();
    closers.push(() => feed.close());
    const latest = new LatestStore(() => latestPerSlu(pool, cache), log);
    await latest.start();
    const freshness = new Freshness();
    // UPDATE, DELETE, TRUNCATE: seen by the feed in the read whose snapshot includes them, before that read's rows.
    feed.on('change', () => {
      freshness.invalidate();
      latest.onChange('readings updated, deleted or truncated');
    });
    const hub = new Hub((err) => log.error({ err }, 'stream subscriber failed'));
    hub.setInitialCursor(encodeCursor({ kind: 'settled', s: start }));
    let observe: { published(notifyToSend: number | undefined, publish: number): void; read(seconds: number): void } | undefined;
    feed.on('batch', (batch) => {
      // The sockets first: the REST bookkeeping below is not what a subscriber waits for.
      const t0 = performance.now();
      hub.publish(batch);
      const t1 = performance.now();
      latest.onBatch(batch.readings);
      freshness.onBatch(batch.readings);
      if (batch.readings.length > 0) {
        observe?.published(notifiedAt === undefined ? undefined : (t1 - notifiedAt) / 1000, (t1 - t0) / 1000);
        notifiedAt = undefined;
      }
    });
    feed.on('read', (seconds) => observe?.read(seconds));
    feed.on('error', () => undefined); // logged by the feed; the next read covers the gap
    const idleSweep = setInterval(() => hub.sweepIdle(), Math.min(1000, Math.max(20, config.WS_PROGRESS_MS / 2)));
    idleSweep.unref();
    closers.push(() => clearInterval(idleSweep));

    const listener = new Listener(
      { connectionString: databaseUrl, retryBaseMs: config.LISTEN_RETRY_BASE_MS, retryCapMs: config.LISTEN_RETRY_CAP_MS, healthCheckMs: config.LISTEN_HEALTHCHECK_MS },
      log,
    );
    const grants = new Grants(pool, log);
    // Commit -> send: from the first NOTIFY since the last published read to the end of publishing it.
    let notifiedAt: number | undefined;
    listener.on('notify', () => {
      notifiedAt ??= performance.now();
      feed.wake();
    });
    listener.on('grant', (partner) => grants.changed(partner));
    // A change wakes the feed, which sees it through the change counter (and so does its next poll, if missed).
    listener.on('change', () => feed.wake());
    let listenedBefore = false;
    listener.on('listening', () => {
      feed.wake(); // catch up on whatever committed while LISTEN was down (rows and changes alike)
      if (!listenedBefore) {
        listenedBefore = true;
        return;
      }
      grants.changed(); // grant notifications may have been missed: reload them all
    });
    await listener.start();
    closers.push(() => listener.close());

    const paths = certPaths(config.TLS_CA, config.TLS_CERT, config.TLS_KEY);
    if (config.TLS_DEV_CERTS && !(existsSync(paths.ca) && existsSync(paths.cert) && existsSync(paths.key))) {
      const written = await ensureDevCerts(paths);
      if (written.length) log.warn({ written }, 'created development certificates (not for production)');
      if (written.some((f) => f.endsWith(`${DEMO_PARTNER}.crt`))) {
        // So the printed curl command works on first run; a real partner is granted with `npm run partners`.
        await grant(pool, DEMO_PARTNER, null);
        log.warn({ partner: DEMO_PARTNER }, 'granted the demo partner every SLU (development certificates)');
      }
    }

    let stream: StreamServer | undefined;
    let handshakes: HandshakeGuard | undefined;
    const tls = await TlsReloader.start({ ca: config.TLS_CA, cert: config.TLS_CERT, key: config.TLS_KEY, crl: config.TLS_CRL, denylist: config.TLS_DENYLIST }, log, {
      contextOptions: (m) => tlsServerOptions(m, { sessionTickets: config.TLS_SESSION_TICKETS, handshakeTimeoutMs: config.TLS_HANDSHAKE_TIMEOUT_MS }),
      watch: config.TLS_WATCH,
      warnDays: config.TLS_EXPIRY_WARN_DAYS,
      onReload: (material) => {
        for (const s of stream?.sessions() ?? []) {
          if (material.isDenied(s.partner)) s.close('SLUICE_ERR_CERT_REVOKED', 'this client certificate was revoked');
        }
      },
    });
    closers.push(() => tls.close());
    const isRevoked = (p: PartnerIdentity) => tls.current.isDenied(p);
    const metrics = new Metrics({
      pool,
      streamPartners: function* () {
        for (const s of stream?.sessions() ?? []) yield s.partner.cn;
      },
      hubStats: () => hub.stats,
      listenerReconnects: () => listener.reconnects,
      replays: () => replaySlots.running,
      tlsDegraded: () => tls.degraded !== undefined,
      pendingHandshakes: () => handshakes?.pending ?? 0,
    });
    observe = {
      published: (notifyToSend, publish) => {
        if (notifyToSend !== undefined) metrics.notifyToSend.observe(notifyToSend); // not for reads the poll timer found
        metrics.publish.observe(publish);
      },
      read: (seconds) => metrics.feedRead.observe(seconds),
    };

    const app = buildRestApp({
      pool,
      log,
      basePath: config.BASE_PATH,
      https: tlsServerOptions(tls.current, { sessionTickets: config.TLS_SESSION_TICKETS, handshakeTimeoutMs: config.TLS_HANDSHAKE_TIMEOUT_MS }),
      isRevoked,
      metrics,
      timeMaxRows: config.TIME_MAX_ROWS,
      rateLimitPerSecond: config.REST_RATE_LIMIT,
      fresh: { freshness, sync: () => feed.sync() },
      cache,
      grants,
      latest: async (access) => {
        await feed.sync();
        return latest.json(access);
      },
    });
    await app.ready();
    app.server.maxConnections = config.MAX_CONNECTIONS;
    tls.attach(app.server as unknown as HttpsServer);
    const guard = new HandshakeGuard(app.server as unknown as HttpsServer, { maxPending: config.MAX_PENDING_HANDSHAKES, maxPendingPerAddress: config.MAX_PENDING_HANDSHAKES_PER_ADDRESS }, log, metrics);
    handshakes = guard;
    stream = createStreamServer({
      server: app.server as unknown as HttpsServer,
      hub,
      replay: { pool: replayPool, canceller: pool, slots: replaySlots, windowS: config.REPLAY_WINDOW_S },
      cache,
      grants,
      isRevoked,
      metrics,
      log,
      opts: {
        path: `${config.BASE_PATH}/stream`,
        maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
        heartbeatMs: config.WS_HEARTBEAT_MS,
        maxSlus: config.WS_MAX_SLUS,
        maxConnections: config.WS_MAX_CONNECTIONS,
        maxConnectionsPerPartner: config.WS_MAX_CONNECTIONS_PER_PARTNER,
        maxBufferBytes: config.WS_MAX_BUFFER_BYTES,
        catchUpPageRows: config.FEED_PAGE_ROWS,
        maxBadMessages: 20,
        messagesPerS: config.WS_MESSAGES_PER_S,
        messageBurst: config.WS_MESSAGE_BURST,
        maxOverBudget: 20,
        progressIntervalMs: config.WS_PROGRESS_MS,
        replayFlushTimeoutMs: config.WS_HEARTBEAT_MS,
      },
    });
    await app.listen({ host: config.HOST, port: config.PORT });
    closers.push(() => app.close());
    closers.push(() => guard.close()); // before app.close(): the server's close would wait for pending handshakes to time out
    const streamServer = stream;
    closers.push(() => streamServer.close()); // runs before app.close(): clients get 1012 first

    let opsPort: number | undefined;
    if (config.OPS_ENABLED) {
      let dbOk = true;
      feed.on('error', () => (dbOk = false));
      feed.on('batch', () => (dbOk = true));
      const stats = processStats();
      const ops = await startOpsServer({
        host: config.OPS_HOST,
        port: config.OPS_PORT,
        health: () => ({
          ready: dbOk && listener.state === 'listening',
          database: dbOk ? 'ok' : 'unreachable',
          listener: listener.state,
          listenerReconnects: listener.reconnects,
          // Not part of `ready`: the previous, good material still serves, and a bad file pushed to every
          // gateway at once must not take them all out of the load balancer.
          tls: tls.degraded === undefined ? 'ok' : 'degraded',
          ...(tls.degraded === undefined ? {} : { tlsReason: tls.degraded }),
          streamClients: stream.clients,
          replays: replaySlots.running,
          pendingHandshakes: guard.pending,
          process: stats(),
        }),
        extra: (req, res) => {
          if ((req.url ?? '').split('?')[0] !== '/metrics') return false;
          metrics.text().then(
            (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
            (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}`),
          );
          return true;
        },
      });
      opsPort = ops.port;
      closers.push(() => ops.close());
    }

    const port = (app.server.address() as AddressInfo).port;
    const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
    return {
      url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
      port,
      opsPort,
      databaseUrl,
      embedded: embedded !== undefined,
      pool,
      feed,
      hub,
      listener,
      stream,
      handshakes: guard,
      grants,
      replays: replaySlots,
      reloadTls: () => tls.reload('requested'),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
