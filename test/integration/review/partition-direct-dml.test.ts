// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: the change counter and NOTIFY of sql/005-006 are STATEMENT triggers on slu_reading. PostgreSQL fires a
// partitioned table's statement triggers only for statements that name the partitioned table; row triggers are
// cloned to partitions, statement triggers are not. Since sql/010 every reading lives in a partition that an
// operator can name (`npm run db -- partitions` lists them; cleaning junk out of slu_reading_default, archiving a
// day with DETACH, truncating a bad import's partition). Such a DELETE / TRUNCATE / DETACH / DROP moves no counter
// and sends no NOTIFY: every gateway keeps serving the removed readings from /latest (and /rows bodies) for good,
// and DETACH/DROP set no horizon either.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '100' }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

async function latestV1(http: ReturnType<typeof httpsClient>, slu: number): Promise<number | undefined> {
  const body = (await http.get('/cityxchange/latest')).json<Array<{ slu_id: number; v1: number }>>();
  return body.find((r) => r.slu_id === slu)?.v1;
}

describe('DELETE / TRUNCATE / DETACH addressed to a partition', () => {
  it('/latest stops answering readings the table no longer holds', async () => {
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    try {
      // SLU 11: a junk reading from a unit whose clock says 9999 (the default partition).
      await db.pool.query(`insert into slu_reading (slu_id, t, v1) values (11, now() at time zone 'utc', 1)`);
      await db.pool.query(`insert into slu_reading (slu_id, t, v1) values (11, '9999-01-01', 666)`);
      // SLU 12 and 13: readings in the current partition.
      await db.pool.query(`insert into slu_reading (slu_id, t, v1) values (12, now() at time zone 'utc', 12), (13, now() at time zone 'utc', 13)`);
      await new Promise((r) => setTimeout(r, 500));
      expect(await latestV1(http, 11)).toBe(666);
      expect(await latestV1(http, 12)).toBe(12);
      // The operator cleans up the junk where it lies, and truncates the current partition (a bad import).
      await db.pool.query(`delete from slu_reading_default where t >= '9000-01-01'`);
      const current = (await db.pool.query<{ p: string }>(`select tableoid::regclass::text as p from slu_reading where slu_id = 12`)).rows[0]?.p as string;
      await db.pool.query(`truncate ${current}`);
      await new Promise((r) => setTimeout(r, 1500));
      const table = (await db.pool.query<{ slu_id: number; v1: number }>(`select distinct on (slu_id) slu_id, v1 from slu_reading where slu_id in (11, 12, 13) order by slu_id, t desc, id desc`)).rows;
      const served = { 11: await latestV1(http, 11), 12: await latestV1(http, 12), 13: await latestV1(http, 13) };
      console.log('table now:', JSON.stringify(table), '/latest serves:', JSON.stringify(served));
      expect(served[11]).not.toBe(666); // deleted from the table
      expect(served[12]).toBeUndefined(); // truncated
      expect(served[13]).toBeUndefined();
    } finally {
      http.close();
    }
  });
});
