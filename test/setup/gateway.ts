import { Writable } from 'node:stream';
import pg from 'pg';
import { grant } from '../../src/access/grant-store.ts';
import { migrate } from '../../src/db/migrate.ts';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { createGateway, type Gateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/log.ts';
import type { TestPki } from './pki.ts';

/** Log lines a test gateway wrote, parsed, so tests can assert on what was logged. */
export type LogLines = Array<Record<string, unknown>>;

/**
 * Partners (certificate CNs) the test gateways grant every SLU, so tests about something else need not set up
 * grants. Access-control tests use other names.
 */
export const GRANTED_EVERYTHING = ['acme', 'acme-energy', 'acme-new', 'acme-old', 'pager', 'x'];

/** Starts an in-process gateway on 127.0.0.1:0 against the given database and PKI. */
export async function startTestGateway(
  databaseUrl: string,
  pki: TestPki,
  env: Record<string, string> = {},
  opts: { grantAll?: readonly string[] } = {},
): Promise<{ gateway: Gateway; config: Config; logs: LogLines }> {
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  db.on('error', () => undefined); // see stream-faults.test.ts: end() does not wait for the sockets
  db.on('connect', (c) => c.on('error', () => undefined));
  try {
    await migrate(db);
    for (const p of opts.grantAll ?? GRANTED_EVERYTHING) await grant(db, p, null);
  } finally {
    await db.end();
  }
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    HOST: '127.0.0.1',
    PORT: '0',
    TLS_CA: pki.caFile,
    TLS_CERT: pki.certFile,
    TLS_KEY: pki.keyFile,
    TLS_DEV_CERTS: 'false',
    LOG_LEVEL: 'info',
    OPS_PORT: '0',
    ...env,
  });
  const logs: LogLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const gateway = await createGateway(config, createLogger(config.LOG_LEVEL, sink));
  if (process.env.SLUICE_TEST_LOGS) {
    const dump = setInterval(() => { for (const l of logs.splice(0)) if ((l.level as number) >= 40) console.error(JSON.stringify(l).slice(0, 800)); }, 200);
    dump.unref();
  }
  return { gateway, config, logs };
}
