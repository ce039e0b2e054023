import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { freePort } from '../../src/loadtest/gateway-process.ts';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a maintenance database on the test server (for CREATE DATABASE). */
    pgAdminUrl: string;
    /** A migrated database that each test file clones. */
    pgTemplate: string;
  }
}

// A free TCP port on loopback (the embedded server needs a fixed one): the load test's helper.
export { freePort };

let embedded: EmbeddedPostgres | undefined;
let dataDir: string | undefined;

/**
 * One PostgreSQL for the whole run: DATABASE_URL when set (any PostgreSQL 15-18; the role needs CREATEDB),
 * otherwise a throwaway embedded server. One migrated template database, cloned per test file.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dataDir = path.resolve(`var/test-pg-${process.pid}-${randomBytes(3).toString('hex')}`);
    embedded = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), ephemeral: true });
    adminUrl = embedded.adminUrl;
  }
  const template = `sluice_tpl_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${template}`);
  await admin.end();
  const tplUrl = new URL(adminUrl);
  tplUrl.pathname = `/${template}`;
  const pool = new pg.Pool({ connectionString: tplUrl.toString(), max: 2 });
  await migrate(pool);
  await pool.end();
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);

  return async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect().catch(() => undefined);
    await c.query(`drop database if exists ${template} with (force)`).catch(() => undefined);
    await c.end().catch(() => undefined);
    await embedded?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  };
}
