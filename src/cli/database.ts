import type pg from 'pg';
import type { Config } from '../config/config.ts';
import { startEmbeddedPostgres } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { migrateOptions } from '../db/database.ts';
import { createPool } from '../db/pool.ts';

/**
 * The database the gateway would use, for command-line tools: DATABASE_URL, or the embedded server under
 * EMBEDDED_PG_DIR (reused when `npm start` is running it, started for the duration of the command otherwise).
 * Migrations are applied, so a tool works on a fresh checkout too.
 */
export async function openDatabase(config: Config, poolMax = 2): Promise<{ url: string; pool: pg.Pool; close(): Promise<void> }> {
  const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres({ dir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT });
  const url = config.DATABASE_URL ?? (embedded?.url as string);
  const pool = createPool({ connectionString: url, max: poolMax, connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, queryTimeoutMs: 600_000 });
  try {
    await migrate(pool, undefined, migrateOptions(config));
  } catch (err) {
    await pool.end();
    await embedded?.close();
    throw err;
  }
  return {
    url,
    pool,
    async close() {
      await pool.end();
      await embedded?.close();
    },
  };
}
