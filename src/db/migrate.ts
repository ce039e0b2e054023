import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

/** Where the forward-only migrations live: sql/NNN_name.sql, applied in file-name order. */
export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

/** Arbitrary but fixed: the advisory lock that serialises concurrent migrators (two gateways starting at once). */
const MIGRATION_LOCK = 0x51_75_1c_e0;

export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
}

/** Reads sql/*.sql; file names must start with a unique number. */
export async function loadMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  const out: Migration[] = [];
  for (const name of files) {
    const id = Number.parseInt(name, 10);
    if (out.some((m) => m.id === id)) throw new Error(`two migrations share number ${id}: rename one in ${dir}`);
    out.push({ id, name, sql: await readFile(dir + name, 'utf8') });
  }
  return out;
}

/**
 * Applies pending migrations, each in its own transaction. Safe to call from several processes at once: a
 * session advisory lock lets one migrate while the others wait and then find nothing to do. Returns the names
 * of the migrations this call applied.
 */
export async function migrate(pool: pg.Pool, migrations?: readonly Migration[]): Promise<string[]> {
  const all = migrations ?? (await loadMigrations());
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        `create table if not exists sluice_migration (
           id integer primary key, name text not null, applied_at timestamptz not null default now())`,
      );
      const done = new Set((await client.query<{ id: number }>('select id from sluice_migration')).rows.map((r) => r.id));
      for (const m of all) {
        if (done.has(m.id)) continue;
        await client.query('begin');
        try {
          await client.query(m.sql);
          await client.query('insert into sluice_migration (id, name) values ($1, $2)', [m.id, m.name]);
          await client.query('commit');
          applied.push(m.name);
        } catch (err) {
          await client.query('rollback').catch(() => undefined);
          throw new Error(`migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
        }
      }
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
  return applied;
}
