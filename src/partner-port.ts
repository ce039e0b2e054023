import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mayRead, type Access } from './access/grants.ts';
import { latestPerSlu } from './db/latest.ts';
import { latestArrayJson } from './format/reading.ts';
import type { Config } from './config/config.ts';
import type { Database } from './db/database.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './ops/metrics.ts';
import { buildRestApp } from './rest/app.ts';
import type { Live } from './stream/live.ts';
import type { ReplaySlots } from './stream/replay-slots.ts';
import { HandshakeGuard } from './tls/handshake-guard.ts';
import type { PartnerIdentity } from './tls/identity.ts';
import { serverTlsOptions } from './tls/tls-setup.ts';
import type { TlsReloader } from './tls/tls-reloader.ts';
import { createStreamServer, type StreamServer } from './ws/stream-server.ts';

/** The partner port: REST and the WebSocket stream on one HTTPS server with mandatory client certificates. */
export interface PartnerPort {
  readonly port: number;
  readonly stream: StreamServer;
  readonly handshakes: HandshakeGuard;
  close(): Promise<void>;
}

/**
 * Builds the HTTPS server (Fastify), guards its handshakes, mounts the stream on it and listens. close() tells
 * stream clients to reconnect elsewhere (1012) first, drops handshakes in progress, then closes the server.
 */
export async function startPartnerPort(
  config: Config,
  deps: { db: Database; live: Live; tls: TlsReloader; replays: ReplaySlots; metrics: Metrics; log: Logger },
): Promise<PartnerPort> {
  const { db, live, tls, metrics, log } = deps;
  const isRevoked = (p: PartnerIdentity) => tls.current.isDenied(p);
  let stream: StreamServer | undefined; // mounted on the app's server below; /events hands its responses to it
  const app = buildRestApp({
    pool: db.pool,
    log,
    basePath: config.BASE_PATH,
    https: serverTlsOptions(config)(tls.current),
    isRevoked,
    metrics,
    timeMaxRows: config.TIME_MAX_ROWS,
    // Two partition widths back: an SLU that reports has its newest readings there (src/db/rows.ts).
    recentFrom: () => new Date(Date.now() - 2 * config.PARTITION_WIDTH * 1000).toISOString().replace('T', ' ').slice(0, 19),
    rateLimitPerSecond: config.REST_RATE_LIMIT,
    fresh: { freshness: live.freshness, sync: () => live.feed.syncWithin(config.FEED_SYNC_WAIT_MS) },
    cache: live.cache,
    grants: live.grants,
    events: (res, partner, access, request) => stream?.openEvents(res, partner, access, request),
    // Read-your-writes: a reading committed before the request is in the answer. From memory once the feed has
    // read past the request; if it is busy with a backlog (or the database hangs), from the table itself.
    latest: async (access: Access) => {
      if (await live.feed.syncWithin(config.FEED_SYNC_WAIT_MS)) return live.latest.json(access);
      return latestArrayJson((await latestPerSlu(db.pool, live.cache)).filter((r) => mayRead(access, r.sluId)).map((r) => r.formatted));
    },
  });
  await app.ready();
  const server = app.server as unknown as HttpsServer;
  server.maxConnections = config.MAX_CONNECTIONS;
  tls.attach(server);
  const handshakes = new HandshakeGuard(server, {
      maxPending: config.MAX_PENDING_HANDSHAKES,
      maxPendingPerAddress: config.MAX_PENDING_HANDSHAKES_PER_ADDRESS,
      handshakeTimeoutMs: config.TLS_HANDSHAKE_TIMEOUT_MS,
      maxInHandshake: config.MAX_HANDSHAKES_IN_FLIGHT,
    }, log, metrics);
  stream = createStreamServer({
    server,
    hub: live.hub,
    replay: { pool: db.replayPool, canceller: db.pool, slots: deps.replays, windowS: config.REPLAY_WINDOW_S, hotFrom: db.partitions.hotFrom },
    cache: live.cache,
    grants: live.grants,
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
      maxPartnerBufferBytes: config.WS_MAX_PARTNER_BUFFER_BYTES,
      maxTotalBufferBytes: config.WS_MAX_TOTAL_BUFFER_BYTES,
      catchUpPageRows: config.FEED_PAGE_ROWS,
      maxBadMessages: 20,
      messagesPerS: config.WS_MESSAGES_PER_S,
      messageBurst: config.WS_MESSAGE_BURST,
      maxOverBudget: 20,
      progressIntervalMs: config.WS_PROGRESS_MS,
      replayFlushTimeoutMs: config.WS_HEARTBEAT_MS,
    },
  });
  const mounted = stream;
  try {
    await app.listen({ host: config.HOST, port: config.PORT });
  } catch (err) {
    await mounted.close();
    handshakes.close();
    await app.close();
    throw err;
  }
  return {
    port: (server.address() as AddressInfo).port,
    stream: mounted,
    handshakes,
    async close() {
      await mounted.close(); // clients get 1012 first
      handshakes.close(); // the server's close would otherwise wait for pending handshakes to time out
      await app.close();
    },
  };
}
