import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool } from '../../src/db/pool.ts';

/** A database of its own for one test file, cloned from the migrated template. */
export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** A pool with sluice's type parsers (reals as text). */
  readonly pool: pg.Pool;
  /** Drops the database (forcefully: tests may leave connections behind on failure). */
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const template = inject('pgTemplate');
  const name = `sluice_t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // CREATE DATABASE ... TEMPLATE fails while another file is cloning the same template (55006): retry.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${template}`);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== '55006' || attempt > 50) throw err;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const pool = createPool({ connectionString: url, max: 4, connectTimeoutMs: 5000, queryTimeoutMs: 30_000 });
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
      await c.end();
    },
  };
}

/** A reading as the tests insert it; omitted fields are null (or now() for t). */
export interface Insertable {
  slu_id: number;
  t?: string;
  p1?: number | string; p2?: number | string; p3?: number | string;
  k1?: number | string; k2?: number | string; k3?: number | string;
  a1?: number | string; a2?: number | string; a3?: number | string;
  v1?: number; v2?: number; v3?: number;
}

const COLS = ['slu_id', 't', 'p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3', 'v1', 'v2', 'v3'] as const;

/** Inserts readings the way legacy writers do: a plain multi-row INSERT with a column list. */
export async function insertReadings(db: pg.Pool | pg.PoolClient | pg.Client, rows: readonly Insertable[]): Promise<void> {
  if (rows.length === 0) return;
  const values: unknown[] = [];
  const tuples = rows.map((r) => {
    const ph = COLS.map((c) => {
      const v = (r as unknown as Record<string, unknown>)[c];
      if (c === 't' && v === undefined) return `(now() at time zone 'utc')`;
      values.push(v ?? null);
      return `$${values.length}`;
    });
    return `(${ph.join(', ')})`;
  });
  await db.query(`insert into slu_reading (${COLS.join(', ')}) values ${tuples.join(', ')}`, values);
}
