// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: docs/operations.md ("Backups", written with this change): "A pg_dump restore gives every restored row the
// restoring transaction's xid: the INSERT guard of sql/009 replaces a supplied xid." It does not: pg_dump loads the
// data (one COPY per partition) BEFORE it creates the triggers (post-data section), so every row keeps the source
// cluster's xid, and sluice_partition.cold_xid, sluice_xid_clock and sluice_horizon keep source-cluster xids too.
// Restored onto a new server (the usual disaster recovery) whose xid counter is behind the old one's, every row's
// xid is "in the future": not visible in any snapshot, so the feed delivers the whole table on EVERY read (the
// exact failure sql/009 was written for), and every resume gets 4410 (the xid clock is "ahead").
//
// Needs a pg_dump that matches the server (run with DATABASE_URL on PostgreSQL 15 here: pg_dump 15 is installed).
// The new server is simulated by shifting the dumped xid values by +1,000,000 (a source cluster that many
// transactions ahead of the target), which is what a fresh target sees.
let src: TestDatabase;
let base: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway | undefined;
const target = `sluice_review_restore_${process.pid}`;
let canDump = false;

beforeAll(async () => {
  [src, base, pki] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  try {
    const server = Number((await src.pool.query(`select current_setting('server_version_num')::int / 10000 as v`)).rows[0].v);
    const dump = Number(/(\d+)/.exec(execFileSync('pg_dump', ['--version']).toString())?.[1]);
    canDump = dump >= server;
  } catch {
    canDump = false;
  }
}, 60_000);
afterAll(async () => {
  await g?.close();
  await base?.pool.query(`drop database if exists ${target} with (force)`).catch(() => undefined);
  await Promise.all([src?.drop(), base?.drop()]);
  await pki?.close();
});

describe('a pg_dump restore', () => {
  it('gives restored rows fresh xids, so the stream does not deliver history', async (ctx) => {
    if (!canDump) ctx.skip();
    await src.pool.query(`insert into slu_reading (slu_id, t, v1) select 5, (now() at time zone 'utc') - make_interval(mins => n), n from generate_series(1, 20) n`);
    const before = (await src.pool.query<{ x: string }>(`select string_agg(xid::text, ',' order by v1) as x from slu_reading`)).rows[0]?.x;
    let sql = execFileSync('pg_dump', ['--no-owner', '--no-privileges', src.url], { maxBuffer: 1 << 26 }).toString();
    // The target server is 1,000,000 transactions behind the source: shift the xid column (the last one) of the
    // slu_reading partitions' COPY data, as a fresh server would see it.
    sql = sql.replace(/(COPY public\.slu_reading_\w+ \([^)]*\) FROM stdin;\n)([\s\S]*?)(\n\\\.\n)/g, (_m, head: string, body: string, tail: string) =>
      head + body.split('\n').map((line) => line.replace(/\t(\d+)$/, (_x, n: string) => `\t${Number(n) + 1_000_000}`)).join('\n') + tail);
    await base.pool.query(`create database ${target} template template0`);
    const url = base.url.replace(/\/[^/?]+(\?|$)/, `/${target}$1`);
    execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', url], { input: sql });
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const after = (await c.query<{ x: string }>(`select string_agg((xid::text::bigint - 1000000)::text, ',' order by v1) as x from slu_reading`)).rows[0]?.x;
    console.log(`restored rows kept the dumped xids: ${after === before}`);
    // Fix: the gateway's start (migrate, src/db/restore.ts) finds rows from the future and makes them history.
    ({ gateway: g } = await startTestGateway(url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '100' }));
    const future = (await c.query<{ n: number }>(`select count(*)::int as n from slu_reading where xid > pg_current_xact_id()`)).rows[0]?.n;
    expect((await c.query<{ n: number }>(`select count(*)::int as n from slu_reading`)).rows[0]?.n).toBe(20);
    await c.end();
    const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=5' });
    await s.next('subscribed');
    await new Promise((r) => setTimeout(r, 2000));
    const delivered = s.readings.length;
    console.log(`a live client that only subscribed received ${delivered} readings in 2 s (the table holds 20, all history)`);
    await s.close();
    expect(future).toBe(0);
    expect(delivered).toBe(0);
  }, 60_000);
});
