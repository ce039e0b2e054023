import os from 'node:os';
import { z } from 'zod';

/**
 * Every setting sluice reads, from the environment, once. Names carry their units. `loadConfig` validates the
 * whole environment and reports every problem in one message, so a bad deployment fails at start-up, not later.
 */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** A duration such as "90 days", "1 day", "6 hours", "30 minutes" or "2 weeks", as seconds. */
const UNIT_S: Record<string, number> = { minute: 60, hour: 3600, day: 86_400, week: 604_800 };
const duration = (minS: number) =>
  z
    .string()
    .regex(/^\s*\d+\s*(minute|hour|day|week)s?\s*$/i, 'use a number and a unit: minutes, hours, days or weeks, e.g. "90 days"')
    .transform((v) => {
      const m = /^\s*(\d+)\s*(minute|hour|day|week)/i.exec(v) as RegExpExecArray;
      return Number(m[1]) * (UNIT_S[(m[2] as string).toLowerCase()] as number);
    })
    .refine((s) => s >= minS, { message: `must be at least ${minS} seconds` });
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'use true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const ConfigSchema = z
  .object({
    /** PostgreSQL URL. Unset: start the embedded PostgreSQL under EMBEDDED_PG_DIR. */
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
      .optional(),
    /** Interface to listen on. Default 0.0.0.0 (all IPv4 interfaces). */
    HOST: z.string().min(1).default('0.0.0.0'),
    /** HTTPS + WebSocket port. Default 8443; 0 picks a free port (tests). */
    PORT: int(0, 65535).default(8443),
    /** Path prefix of the partner API. Default /cityxchange, as in the partner document. */
    BASE_PATH: z
      .string()
      .regex(/^(\/[A-Za-z0-9._~-]+)*$/, 'must be empty or start with / and contain no trailing slash, e.g. /cityxchange')
      .default('/cityxchange'),
    /** CA certificate(s) (PEM) that partner certificates must chain to. Default certs/ca.crt. */
    TLS_CA: z.string().min(1).default('certs/ca.crt'),
    /** Server certificate (PEM). Default certs/server.crt. */
    TLS_CERT: z.string().min(1).default('certs/server.crt'),
    /** Server private key (PEM). Default certs/server.key. */
    TLS_KEY: z.string().min(1).default('certs/server.key'),
    /** Certificate revocation list (PEM) checked at every handshake and request; reloaded with the certificates. Unset: none. */
    TLS_CRL: z.string().min(1).optional(),
    /** File of SHA-256 certificate fingerprints (one per line, # comments) refused at every request and upgrade. Unset: none. */
    TLS_DENYLIST: z.string().min(1).optional(),
    /** Reload CA, certificate, key and CRL when their files change (SIGHUP always reloads). Default true. */
    TLS_WATCH: bool.default(true),
    /** Issue TLS session tickets (resumption without a full handshake). Default false: 25% less memory per connection, and nothing to resume after a revocation. */
    TLS_SESSION_TICKETS: bool.default(false),
    /** Longest a TLS handshake may take, from the TCP connection to the checked client certificate, ms; then the connection is closed. Default 5000 (Node's own: 120000). */
    TLS_HANDSHAKE_TIMEOUT_MS: int(100, 120_000).default(5000),
    /** Warn in the log this many days before the server certificate expires (at start, reload and daily). Default 14. */
    TLS_EXPIRY_WARN_DAYS: int(0, 3650).default(14),
    /** Create a dev CA, server and demo-partner certificate when the TLS files are missing. Default true. */
    TLS_DEV_CERTS: bool.default(true),
    /** pino level: fatal, error, warn, info, debug, trace, silent. Default info. */
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Data directory of the embedded PostgreSQL (used only without DATABASE_URL). Default var/pg. */
    EMBEDDED_PG_DIR: z.string().min(1).default('var/pg'),
    /** Port of the embedded PostgreSQL (loopback only). Default 54329. */
    EMBEDDED_PG_PORT: int(1, 65535).default(54329),
    /** Most pooled query connections. Default 10. */
    PG_POOL_MAX: int(1, 1000).default(10),
    /** How long a request waits for a database connection before a 503, in ms. Default 2000. */
    PG_CONNECT_TIMEOUT_MS: int(100, 600_000).default(2000),
    /** Longest a single query may run before a 503, in ms. Default 10000. */
    PG_QUERY_TIMEOUT_MS: int(100, 600_000).default(10_000),
    /** Rows per /time page; more rows set X-Sluice-Truncated and a Link to the next page. Default 10000 (legacy). */
    TIME_MAX_ROWS: int(1, 10_000).default(10_000),
    /** Formatted readings kept in memory (about 300 bytes each), keyed by row version (id, xid), so never stale. Default 200000. */
    READING_CACHE_SIZE: int(0, 50_000_000).default(200_000),
    /** Loopback port for /healthz, /readyz (and metrics): plain HTTP, no client certificate. Default 9464; 0 = any free port. */
    OPS_PORT: int(0, 65535).default(9464),
    /** Interface of the ops port. Default 127.0.0.1 (keep it off the public network). */
    OPS_HOST: z.string().min(1).default('127.0.0.1'),
    /** Serve the ops port at all. Default true. */
    OPS_ENABLED: bool.default(true),
    /** Read the table for new readings at least this often even without NOTIFY, ms. Default 1000. */
    FEED_POLL_INTERVAL_MS: int(50, 600_000).default(1000),
    /** Where the feed reads new readings: "dedicated" = its own connection with a prepared statement (planned per call), "pool" = the query pool. Default dedicated. */
    FEED_CONNECTION: z.enum(['dedicated', 'pool']).default('dedicated'),
    /** Deliver a small statement's rows from its NOTIFY payload at once (sql/014), before the read confirms them. Default true. */
    FEED_FAST_PATH: bool.default(true),
    /** After rows went out from a payload, the read that confirms them waits this long, so reads coalesce, ms. Default 20. */
    FEED_CONFIRM_MS: int(0, 1000).default(20),
    /** Longest /latest and /rows wait for the feed to read past the request (read-your-writes from memory); past it they read the table themselves, ms. Default 250. */
    FEED_SYNC_WAIT_MS: int(1, 60_000).default(250),
    /** Rows per database read when replaying a backlog or a resume; one frame each. Default 5000. */
    FEED_PAGE_ROWS: int(10, 100_000).default(5000),
    /** LISTEN reconnect: first delay and cap of the jittered exponential backoff, ms. Defaults 250 and 10000. */
    LISTEN_RETRY_BASE_MS: int(10, 60_000).default(250),
    LISTEN_RETRY_CAP_MS: int(100, 600_000).default(10_000),
    /** How often the LISTEN connection is checked with a trivial query, ms. Default 5000. */
    LISTEN_HEALTHCHECK_MS: int(100, 600_000).default(5000),
    /** TCP connections the HTTPS port accepts in all; beyond, new ones are closed at once. Default 25000. */
    MAX_CONNECTIONS: int(1, 1_000_000).default(25_000),
    /** Connections still in the TLS handshake, in all; beyond, new TCP connections are reset at once. Keep it well below MAX_CONNECTIONS. Default 1000. */
    MAX_PENDING_HANDSHAKES: int(1, 1_000_000).default(1000),
    /** The same per remote address (IPv6: per /64); beyond, that address's new connections are reset at once. Default 100. */
    MAX_PENDING_HANDSHAKES_PER_ADDRESS: int(1, 1_000_000).default(100),
    /** TLS handshakes started and not yet finished at once; further pending connections wait in a queue (FIFO, within TLS_HANDSHAKE_TIMEOUT_MS), so a mass reconnect does not stall the event loop. Default 16. */
    MAX_HANDSHAKES_IN_FLIGHT: int(1, 1_000_000).default(16),
    /** Stream connections the gateway accepts; beyond, upgrades get 503 SLUICE_ERR_SERVER_FULL. Default 20000. */
    WS_MAX_CONNECTIONS: int(1, 1_000_000).default(20_000),
    /** Stream connections per partner (CN); beyond, upgrades get 429 SLUICE_ERR_PARTNER_CONNECTIONS. Default 1000. */
    WS_MAX_CONNECTIONS_PER_PARTNER: int(1, 1_000_000).default(1000),
    /** REST requests per second per partner (CN), then 429 SLUICE_ERR_RATE_LIMITED; 0 = no limit. Default 200. */
    REST_RATE_LIMIT: int(0, 1_000_000).default(200),
    /** Most SLUs one WebSocket connection may subscribe to (more: subscribe to all). Default 10000. */
    WS_MAX_SLUS: int(1, 1_000_000).default(10_000),
    /** Messages per second one WebSocket client may send (subscribe, unsubscribe, ping); more get SLUICE_ERR_MESSAGE_RATE, and a client that keeps it up is closed with 4429; 0 = no limit. Default 20. */
    WS_MESSAGES_PER_S: int(0, 1_000_000).default(20),
    /** Messages a WebSocket client may send at once before WS_MESSAGES_PER_S applies (the token bucket's size). Default 40. */
    WS_MESSAGE_BURST: int(1, 1_000_000).default(40),
    /** Unsent bytes a WebSocket client may fall behind before it is closed with 4408. Default 4194304 (4 MiB). */
    WS_MAX_BUFFER_BYTES: int(1024, 1 << 30).default(4 * 1024 * 1024),
    /** Unsent bytes all of one partner's streams together may hold; beyond, its most-behind streams are closed with 4408. Default 67108864 (64 MiB). */
    WS_MAX_PARTNER_BUFFER_BYTES: int(1024, 2 ** 40).default(64 * 1024 * 1024),
    /** Unsent bytes all streams together may hold; beyond, the most-behind streams are closed with 4408. Default 1073741824 (1 GiB). */
    WS_MAX_TOTAL_BUFFER_BYTES: int(1024, 2 ** 40).default(1024 * 1024 * 1024),
    /** Largest text frame a client may send, bytes (bigger: close 1009). Default 16384. */
    WS_MAX_PAYLOAD_BYTES: int(128, 1 << 24).default(16 * 1024),
    /** Ping interval; a client silent for two intervals is dropped, ms. Default 30000. */
    WS_HEARTBEAT_MS: int(100, 600_000).default(30_000),
    /** Idle clients get a progress frame with a fresh cursor at most this often, ms. Default 10000. */
    WS_PROGRESS_MS: int(0, 3_600_000).default(10_000),
    /** Resumes (since=) replaying at once in this gateway, each on a database connection of its own; more wait (REPLAY_WAIT_MS), then close 1013 SLUICE_ERR_REPLAYS_BUSY. Default 8. */
    REPLAY_MAX_CONCURRENT: int(1, 1000).default(8),
    /** Resumes one partner (certificate CN) may replay at once; more wait, then close 4429 SLUICE_ERR_REPLAY_LIMIT. Default 4. */
    REPLAY_MAX_PER_PARTNER: int(1, 1000).default(4),
    /** Longest a resume waits for a replay slot before it is refused, ms. Default 15000. */
    REPLAY_WAIT_MS: int(0, 600_000).default(15_000),
    /** Oldest cursor a resume accepts, in seconds; older ones are refused with 4410 instead of replaying that much. Default 604800 (7 days). */
    REPLAY_WINDOW_S: int(60, 366 * 86_400).default(7 * 86_400),
    /** Width of one partition of slu_reading (time ranges of t), for partitions made from now on. Default "1 day". */
    PARTITION_WIDTH: duration(3600).prefault('1 day'),
    /** Partitions kept ready ahead of the current one. Default 2. */
    PARTITIONS_AHEAD: int(1, 1000).default(2),
    /** How long after its end a partition stays hot (read directly by the stream); later writes into it are noted and cost a little more. Default "1 hour". */
    PARTITION_COLD_AFTER: duration(60).prefault('1 hour'),
    /** Keep readings this long (e.g. "90 days"); older partitions are dropped whole. Unset: keep everything. */
    RETENTION: duration(3600).optional(),
    /** How often partitions are made ahead, turned cold and dropped past RETENTION, ms (one gateway at a time). Default 600000. */
    PARTITION_MAINTENANCE_MS: int(1000, 86_400_000).default(600_000),
    /** Gateway processes serving the one port (node:cluster): a number, or "auto" for every available core. Default 1 (a single process). */
    WORKERS: z
      .union([z.literal('auto'), z.coerce.number().int().min(1).max(256)], { message: 'use a number from 1 to 256, or auto' })
      .default(1)
      .transform((v) => (v === 'auto' ? os.availableParallelism() : v)),
    /** How long SIGTERM/SIGINT waits for a graceful drain before exiting anyway, in ms. Default 10000. */
    SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),
  })
  .readonly();

export type Config = z.infer<typeof ConfigSchema>;

/** Thrown when the environment is invalid; the message lists every problem and how to fix it. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee the configuration table in README.md.`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment (default: process.env) into a frozen Config or throws a ConfigError listing all problems. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const keys = Object.keys(ConfigSchema.unwrap().shape);
  const input: Record<string, string> = {};
  for (const k of keys) {
    const v = env[k];
    if (v !== undefined && v !== '') input[k] = v;
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.')}=${JSON.stringify(input[String(i.path[0])] ?? '')}: ${i.message}`),
    );
  }
  return Object.freeze({ ...parsed.data });
}
