import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { repairFutureXids } from './restore.ts';
import { maintenanceClient, partitionReadings, prepareLegacyTable, putBackAside, withShortLocks, type TakeoverOptions } from './takeover.ts';

/** Where the forward-only migrations live: sql/NNN_name.sql, applied in file-name order. */
export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

/** Arbitrary but fixed: the advisory lock that serialises concurrent migrators (two gateways starting at once). */
const MIGRATION_LOCK = 0x51_75_1c_e0;

/** sql/010, after which slu_reading is made partitioned. */
const PARTITIONS_MIGRATION = 10;
/** sql/014 (and 015), after which the insert triggers send small statements' rows. */
const ROWS_IN_NOTIFY_MIGRATION = 15;

/**
 * Points the insert trigger of slu_reading and of each of its partitions (sql/015: an INSERT aimed at a partition
 * fires only the partition's statement triggers) at sql/014's sluice_notify_rows, which needs the statement's
 * rows. CREATE OR REPLACE TRIGGER takes SHARE ROW EXCLUSIVE: it waits for writers already in a transaction on the
 * table (and new writers queue behind it), not for readers such as pg_dump; short attempts keep that queue short.
 */
async function useRowsInNotify(c: pg.ClientBase): Promise<number> {
  const missing = await c.query<{ name: string }>(
    `select c.oid::regclass::text as name from pg_class c
      where (c.oid = to_regclass('slu_reading') or c.oid in (select inhrelid from pg_inherits where inhparent = to_regclass('slu_reading')))
        and not exists (select 1 from pg_trigger t join pg_proc p on p.oid = t.tgfoid
                         where t.tgrelid = c.oid and t.tgname = 'sluice_reading_notify' and p.proname = 'sluice_notify_rows' and t.tgnewtable is not null)
      order by c.oid = to_regclass('slu_reading') desc`,
  );
  for (const { name } of missing.rows) {
    await withShortLocks(c, 100, () =>
      c.query(`create or replace trigger sluice_reading_notify after insert on ${name}
                 referencing new table as new_rows for each statement execute function sluice_notify_rows()`),
    );
  }
  return missing.rowCount ?? 0;
}

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
export async function migrate(pool: pg.Pool, migrations?: readonly Migration[], opts: Partial<TakeoverOptions> = {}): Promise<string[]> {
  const all = migrations ?? (await loadMigrations());
  const takeover: TakeoverOptions = { widthS: 86_400, ahead: 2, ...opts };
  // Its own connection without the pool's query timeouts: a takeover validates a big table in one statement.
  const client = await maintenanceClient(pool);
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        `create table if not exists sluice_migration (
           id integer primary key, name text not null, applied_at timestamptz not null default now())`,
      );
      const done = new Set((await client.query<{ id: number }>('select id from sluice_migration')).rows.map((r) => r.id));
      // A legacy table that has never seen sluice gets its keys online first (src/db/takeover.ts).
      if (!done.has(1) && (await prepareLegacyTable(client, takeover))) applied.push('takeover: legacy table prepared');
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
      // Partitioned storage (sql/010) replaces a plain slu_reading online, after the migrations that define it.
      if (all.some((m) => m.id === PARTITIONS_MIGRATION)) {
        if (await partitionReadings(client, takeover)) applied.push('takeover: slu_reading partitioned');
        else await putBackAside(client, takeover.onProgress); // a takeover interrupted right after its switch
      }
      if (all.some((m) => m.id === ROWS_IN_NOTIFY_MIGRATION)) {
        const n = await useRowsInNotify(client);
        if (n > 0) applied.push(`trigger: rows in NOTIFY on ${n} table${n === 1 ? '' : 's'}`);
      }
      // A restore onto another cluster: rows whose xid this cluster has not reached (src/db/restore.ts).
      const repaired = await repairFutureXids(client);
      if (repaired > 0) applied.push(`restore: ${repaired} rows from another cluster's future made history`);
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return applied;
}
