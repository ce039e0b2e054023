import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { Config } from './config/config.ts';
import { migrate } from './db/migrate.ts';
import { createPool } from './db/pool.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.ts';
import { ReadingCache } from './format/reading-cache.ts';
import type { Logger } from './log.ts';
import { buildRestApp } from './rest/app.ts';
import { certPaths, ensureDevCerts } from './tls/certificates.ts';
import { tlsServerOptions } from './tls/server-options.ts';

/** A running gateway: HTTPS REST (and, later, the WebSocket stream) on one port. */
export interface Gateway {
  /** https://host:port of the listening server (host as reachable locally). */
  readonly url: string;
  readonly port: number;
  /** The database URL in use (embedded or DATABASE_URL). */
  readonly databaseUrl: string;
  readonly embedded: boolean;
  readonly pool: pg.Pool;
  /** Stops accepting, drains, and closes everything this gateway opened, in reverse order. */
  close(): Promise<void>;
}

/** Wires database, migrations, TLS and the HTTP app together. Nothing here owns the process (see server.ts). */
export async function createGateway(config: Config, log: Logger): Promise<Gateway> {
  const closers: Array<() => Promise<unknown>> = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch((err: unknown) => log.warn({ err }, 'error while closing'));
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
      closers.push(() => (embedded as EmbeddedPostgres).close());
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

    const cache = new ReadingCache(config.READING_CACHE_SIZE);
    const paths = certPaths(config.TLS_CA, config.TLS_CERT, config.TLS_KEY);
    if (config.TLS_DEV_CERTS && !(existsSync(paths.ca) && existsSync(paths.cert) && existsSync(paths.key))) {
      const written = await ensureDevCerts(paths);
      if (written.length) log.warn({ written }, 'created development certificates (not for production)');
    }

    const app = buildRestApp({
      pool,
      log,
      basePath: config.BASE_PATH,
      https: tlsServerOptions({ ca: config.TLS_CA, cert: config.TLS_CERT, key: config.TLS_KEY }),
      timeMaxRows: config.TIME_MAX_ROWS,
      cache,
    });
    await app.listen({ host: config.HOST, port: config.PORT });
    closers.push(() => app.close());
    const port = (app.server.address() as AddressInfo).port;
    const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
    return {
      url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
      port,
      databaseUrl,
      embedded: embedded !== undefined,
      pool,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
