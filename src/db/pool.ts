import pg from 'pg';
import type { Logger } from 'pino';

/** Options for the query pool; every timeout bounds how long a partner request can wait on the database. */
export interface PoolOptions {
  readonly connectionString: string;
  /** Most connections this process opens for queries (the LISTEN connection is separate). */
  readonly max: number;
  /** How long to wait for a connection before answering 503. */
  readonly connectTimeoutMs: number;
  /** Server-side statement_timeout and client-side read timeout for one query. */
  readonly queryTimeoutMs: number;
  readonly applicationName?: string;
  /** More server settings for every connection, as `-c name=value` pairs. */
  readonly settings?: Readonly<Record<string, string>>;
}

const FLOAT4_OID = 700;
const identity = (v: string): string => v;

/**
 * Type parsers: reals stay as PostgreSQL's text so the legacy formatter sees the exact value once, with no
 * parseFloat round-trip per column; everything else uses pg's defaults.
 */
export const sluiceTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === FLOAT4_OID && format !== 'binary') return identity;
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
} as const;

/** Creates the query pool. Idle-client errors (a Postgres restart) are logged, never thrown. */
export function createPool(opts: PoolOptions, log?: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    query_timeout: opts.queryTimeoutMs,
    statement_timeout: opts.queryTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: opts.applicationName ?? 'sluice',
    // Timestamps and reals are read as text (legacyT() pads them, formatFloat4 needs every digit): make sure the
    // server prints them in ISO form and exactly, whatever the database's or role's settings are. sql/014's
    // trigger pins the same two, so a reading's text is the same in a NOTIFY payload as in a read.
    // jit off: every query here is short, and a cost estimate inflated by skewed statistics once made a 1 ms
    // read spend 300 ms compiling.
    options: ['-c DateStyle=ISO,YMD', '-c extra_float_digits=1', '-c jit=off', ...Object.entries(opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`)].join(' '),
    types: sluiceTypes,
  });
  pool.on('error', (err) => log?.warn({ err: err.message }, 'idle database connection lost'));
  return pool;
}
