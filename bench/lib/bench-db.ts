import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createPool } from '../../src/db/pool.ts';

/** The benchmark database: DATABASE_URL, or a persistent embedded server under var/bench-pg (seeded once). */
export async function benchDatabase(): Promise<{ url: string; pool: pg.Pool; embedded?: EmbeddedPostgres }> {
  let url = process.env.DATABASE_URL;
  let embedded: EmbeddedPostgres | undefined;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dir: 'var/bench-pg', port: Number(process.env.BENCH_PG_PORT ?? 54339) });
    url = embedded.url;
  }
  const pool = createPool({ connectionString: url, max: 8, connectTimeoutMs: 5000, queryTimeoutMs: 3_600_000 });
  await migrate(pool);
  return { url, pool, ...(embedded ? { embedded } : {}) };
}
