import type { ServerResponse } from 'node:http';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Access, Grants } from '../access/grants.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { Freshness } from '../hub/freshness.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { PartnerIdentity } from '../tls/identity.ts';
import type { SluiceError } from '../errors.ts';

/** What the REST app needs from the rest of the gateway. */
export interface RestDeps {
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly basePath: string;
  /** HTTPS server options (key, cert, ca, requestCert...). */
  readonly https: import('node:https').ServerOptions;
  /** REST requests per second per partner before 429; 0 = unlimited. */
  readonly rateLimitPerSecond: number;
  /**
   * What lets /rows answer from a stored body without querying: the feed's per-SLU freshness and a
   * read-your-writes sync (a feed read started after the call, which sees inserts and the change counter).
   */
  readonly fresh?: { readonly freshness: Freshness; /** false when the feed did not catch up in time */ sync(): Promise<boolean> };
  /** Bytes of serialised /rows bodies kept for reuse (default 64 MiB). */
  readonly bodyCacheBytes?: number;
  /**
   * Where "recent" starts for /rows (a UTC timestamp literal): its newest readings are looked for from there first,
   * so the query plans only the partitions from there on. Absent: the whole table at once.
   */
  readonly recentFrom?: () => string;
  /** Rows per /time page. */
  readonly timeMaxRows: number;
  /** Formatted readings by version key, shared with the stream. */
  readonly cache: ReadingCache;
  /** True for a revoked certificate (CRL or deny-list): checked on every request, not only at the handshake. */
  readonly isRevoked: (p: PartnerIdentity) => boolean;
  /** Prometheus metrics (REST latency per route, refusals); optional. */
  readonly metrics?: Metrics;
  /** Grants per partner. */
  readonly grants: Grants;
  /**
   * Serves a Server-Sent Events stream on `res` (GET /events); an error to answer instead when a stream cap
   * refuses it. Absent: no /events route (404).
   */
  readonly events?: (res: ServerResponse, partner: PartnerIdentity, access: Access, request: { sluIds: readonly string[]; since: string | null; from?: string | null }) => SluiceError | undefined;
  /** The /latest body for `access`, current as of a database read started after the call (read-your-writes). */
  readonly latest: (access: Access) => Promise<string>;
}
