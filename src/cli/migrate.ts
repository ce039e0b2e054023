// `npm run migrate`: applies sql/ migrations to DATABASE_URL (or the embedded database) and exits.
import { ConfigError, loadConfig } from '../config/config.ts';
import { startEmbeddedPostgres } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { migrateOptions } from '../db/database.ts';
import { createPool } from '../db/pool.ts';

try {
  const config = loadConfig();
  const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres({ dir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT });
  const url = config.DATABASE_URL ?? (embedded?.url as string);
  const pool = createPool({ connectionString: url, max: 2, connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS, queryTimeoutMs: 600_000 });
  try {
    const applied = await migrate(pool, undefined, migrateOptions(config));
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
  } finally {
    await pool.end();
    await embedded?.close();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `migrate failed: ${(err as Error).message}`);
  process.exit(1);
}
