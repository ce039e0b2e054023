// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: Feed.readOnce reads the change counter only in readSince. When a backlog read fails halfway (a
// connection error), the next readOnce is finishPaging(), which never reads the counter, yet it resolves the
// read-your-writes waiters of /rows and /latest. A DELETE committed in between is then invisible to a /rows
// request that started after it: the cached body (with the deleted reading) is served.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_PAGE_ROWS: '10' }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('change counter skipped after a failed backlog page', () => {
  it('/rows answers with a reading deleted before the request', async () => {
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const op = new pg.Client({ connectionString: db.url, application_name: 'attacker' });
    await op.connect();
    let stale = 0;
    const tries = 3;
    for (let attempt = 0; attempt < tries; attempt++) {
      await op.query('truncate slu_reading');
      await insertReadings(op, [{ slu_id: 1, v1: 1 }, { slu_id: 1, v1: 2 }, { slu_id: 1, v1: 3 }]);
      await new Promise((r) => setTimeout(r, 300));
      await http.get('/cityxchange/rows?slu_id=1&cnt=3');
      await http.get('/cityxchange/rows?slu_id=1&cnt=3'); // body cached with a freshness mark
      await op.query(`insert into slu_reading (slu_id, v1) select 2, n from generate_series(1, 20000) n`);
      await new Promise((r) => setTimeout(r, 300)); // the feed is paging through the backlog, 10 rows a page
      const errorsBefore = g.feed.stats.errors;
      await op.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sluice' and datname = current_database() and pid <> pg_backend_pid()`);
      await op.query(`delete from slu_reading where slu_id = 1 and v1 = 3`);
      const t0 = performance.now();
      const [r, latest] = await Promise.all([http.get('/cityxchange/rows?slu_id=1&cnt=3'), http.get('/cityxchange/latest')]);
      const ms = Math.round(performance.now() - t0);
      const l1 = latest.json<Array<{ slu_id: number; v1: number }>>().find((x) => x.slu_id === 1);
      console.log(`   /latest's SLU 1 reading: v1 ${l1?.v1} (table's newest is v1 2); both answered after ${ms} ms`);
      const hasDeleted = r.json<{ data: Array<{ v1: number }> }>().data.some((x) => x.v1 === 3);
      console.log(`attempt ${attempt}: feed errors +${g.feed.stats.errors - errorsBefore}; /rows after the DELETE committed: ${r.status} v1s ${JSON.stringify(r.json<{ data: Array<{ v1: number }> }>().data.map((x) => x.v1))}`);
      if (hasDeleted) stale++;
      await new Promise((res) => setTimeout(res, 1500));
    }
    http.close();
    await op.end();
    expect(stale, `stale answers in ${tries} attempts`).toBe(0);
  }, 120_000);
});
