import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createPool } from '../../src/db/pool.ts';

/**
 * The size of the seeded reading history of bench:rest and bench:stream: `--rows 100m` or BENCH_ROWS (10m, 100m,
 * or a number such as 25000000 / 25m). Each size has its own embedded database directory, seeded once and reused.
 */
export interface BenchSize {
  /** "10m", "100m", or the number as given. */
  readonly label: string;
  readonly slus: number;
  readonly perSlu: number;
  /** Partition width of slu_reading (PARTITION_WIDTH), seconds. */
  readonly widthS: number;
  /** Embedded data directory and port. */
  readonly dir: string;
  readonly port: number;
  /** True when the size was asked for (--rows / BENCH_ROWS), not the default. */
  readonly explicit: boolean;
}

const KNOWN: Record<string, { slus: number; perSlu: number; widthS: number; port: number }> = {
  // 10,000 SLUs x 1,000 readings, 1-day partitions (the PARTITION_WIDTH default): the figures of docs/capacity.md.
  '10m': { slus: 10_000, perSlu: 1_000, widthS: 86_400, port: 54340 },
  // 10,000 SLUs x 10,000 readings (41.7 hours at one every 15 s), hourly partitions (issue 14).
  '100m': { slus: 10_000, perSlu: 10_000, widthS: 3_600, port: 54341 },
};

/** Parses "10m", "100m", "2500000", "25m", "1.5m", "500k". */
export function parseRows(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)\s*$/i.exec(text.replace(/[_,]/g, ''));
  if (!m) throw new Error(`--rows: use 10m, 100m or a number of readings, got "${text}"`);
  const n = Math.round(Number(m[1]) * ({ '': 1, k: 1e3, m: 1e6, g: 1e9 }[(m[2] as string).toLowerCase()] as number));
  if (!(n >= 1)) throw new Error(`--rows: must be at least 1, got "${text}"`);
  return n;
}

export function benchSize(argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): BenchSize {
  const at = argv.indexOf('--rows');
  const given = at >= 0 ? argv[at + 1] : env.BENCH_ROWS;
  if (at >= 0 && given === undefined) throw new Error('--rows needs a value: 10m, 100m or a number');
  const rows = parseRows(given ?? '10m');
  const label = rows === 10_000_000 ? '10m' : rows === 100_000_000 ? '100m' : String(rows);
  const known = KNOWN[label];
  const slus = Number(env.BENCH_SLUS ?? known?.slus ?? Math.min(10_000, rows));
  const perSlu = Number(env.BENCH_PER_SLU ?? known?.perSlu ?? Math.max(1, Math.round(rows / slus)));
  const widthS = env.BENCH_PARTITION_WIDTH_S ? Number(env.BENCH_PARTITION_WIDTH_S) : (known?.widthS ?? (rows > 20_000_000 ? 3_600 : 86_400));
  return {
    label, slus, perSlu, widthS,
    dir: `var/bench-pg-${label}`,
    port: Number(env.BENCH_PG_PORT ?? known?.port ?? 54342),
    explicit: given !== undefined,
  };
}

/**
 * What a gateway on this size's database runs with: its PARTITION_WIDTH, and above 20M readings a longer
 * PG_QUERY_TIMEOUT_MS (BENCH_PG_QUERY_TIMEOUT_MS, default 60000): with the default 10 s the gateway does not start
 * on the 100M database, because filling its latest-reading store (LATEST_SQL, a loose index scan over every SLU
 * and every partition) took 4-15 s there (docs/capacity.md, "Operating for years").
 */
export function gatewayEnv(size: BenchSize): Record<string, string> {
  const big = size.slus * size.perSlu > 20_000_000;
  const timeout = process.env.BENCH_PG_QUERY_TIMEOUT_MS ?? (big ? '60000' : undefined);
  return { PARTITION_WIDTH: widthEnv(size.widthS), ...(timeout ? { PG_QUERY_TIMEOUT_MS: timeout } : {}) };
}

/** PARTITION_WIDTH for a gateway's environment (the config wants a unit). */
export const widthEnv = (widthS: number): string => (widthS % 3600 === 0 ? `${widthS / 3600} hours` : `${Math.round(widthS / 60)} minutes`);

/**
 * The benchmark database: DATABASE_URL, or a persistent embedded server in the size's own directory (seeded once).
 * Migrated with the size's partition width (a fresh database becomes partitioned at that width).
 */
export async function benchDatabase(size: BenchSize = benchSize()): Promise<{ url: string; pool: pg.Pool; embedded?: EmbeddedPostgres; size: BenchSize }> {
  let url = process.env.DATABASE_URL;
  let embedded: EmbeddedPostgres | undefined;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dir: size.dir, port: size.port });
    url = embedded.url;
  }
  const pool = createPool({ connectionString: url, max: 8, connectTimeoutMs: 5000, queryTimeoutMs: 3_600_000 });
  await migrate(pool, undefined, { widthS: size.widthS, ahead: 2 });
  return { url, pool, size, ...(embedded ? { embedded } : {}) };
}

/**
 * A server for benchmarks that need several databases (bench:partitions): DATABASE_URL's server, or an embedded
 * one in `dir`. `fresh(name)` drops and creates a database of that name on it and returns its URL.
 */
export async function benchServer(dir: string, port: number): Promise<{ url: string; embedded?: EmbeddedPostgres; fresh(name: string): Promise<string>; drop(name: string): Promise<void> }> {
  let url = process.env.DATABASE_URL;
  let embedded: EmbeddedPostgres | undefined;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dir, port });
    url = embedded.url;
  }
  const base = url;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: base });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const drop = (name: string) => admin(async (c) => void (await c.query(`drop database if exists ${name} with (force)`)));
  const fresh = async (name: string) => {
    await drop(name);
    await admin((c) => c.query(`create database ${name}`));
    const u = new URL(base);
    u.pathname = `/${name}`;
    return u.toString();
  };
  return { url, fresh, drop, ...(embedded ? { embedded } : {}) };
}

/** slu_reading's tables: every partition, or the table itself when it is not partitioned (as a FROM item with relid). */
export const READING_LEAVES = `(select relid from pg_partition_tree('slu_reading') where isleaf
  union all select c.oid from pg_class c where c.oid = 'slu_reading'::regclass and c.relkind = 'r')`;

/** slu_reading on disk: every partition's table and indexes (or the plain table's), and the partition count. */
export async function readingStorage(db: pg.Pool | pg.ClientBase): Promise<{ totalBytes: number; heapBytes: number; indexBytes: number; partitions: number; withRows: number; rowsEstimate: number }> {
  const r = await db.query<{ total: string; heap: string; idx: string; parts: string; filled: string; est: string }>(
    `select coalesce(sum(pg_total_relation_size(c.oid)), 0)::text as total,
            coalesce(sum(pg_table_size(c.oid)), 0)::text as heap,
            coalesce(sum(pg_indexes_size(c.oid)), 0)::text as idx,
            count(*) filter (where c.relkind = 'r' and c.oid <> 'slu_reading'::regclass)::text as parts,
            count(*) filter (where c.relkind = 'r' and c.oid <> 'slu_reading'::regclass and c.reltuples > 0)::text as filled,
            coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint::text as est
     from ${READING_LEAVES} t join pg_class c on c.oid = t.relid`,
  );
  const row = r.rows[0];
  return { totalBytes: Number(row?.total), heapBytes: Number(row?.heap), indexBytes: Number(row?.idx), partitions: Number(row?.parts), withRows: Number(row?.filled), rowsEstimate: Number(row?.est) };
}
