// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK (writer side / operator restore): the xid column has a default but nothing stops an INSERT (or COPY,
// e.g. a pg_dump restored on a new cluster) from supplying it. Everything downstream trusts xid.
let db: TestDatabase;
let pki: TestPki;
let east: CertAndKey;
let west: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [east, west] = await Promise.all([pki.client('east'), pki.client('west')]);
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '200' }, { grantAll: [] }));
  await grant(db.pool, 'east', 1);
  await grant(db.pool, 'west', 3);
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('explicit xid values', () => {
  it('a row with an xid above the current counter (e.g. restored from another cluster) is re-delivered on every feed read', async () => {
    const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: west, query: 'slu_id=3' });
    await s.next('subscribed');
    await db.pool.query(`insert into slu_reading (slu_id, v1, xid) values (3, 777, (pg_current_xact_id()::text::bigint + 1000000)::text::xid8)`);
    await new Promise((r) => setTimeout(r, 3000));
    const n = s.readings.filter((r) => r.v1 === 777).length;
    console.log(`one committed row delivered ${n} times in 3 s`);
    await s.close();
    expect(n).toBe(1);
  });

  it('a row version key (id, xid) reused with other content answers from the cache: west gets east\'s reading', async () => {
    await db.pool.query('truncate slu_reading restart identity');
    const ins = await db.pool.query<{ xid: string }>(`insert into slu_reading (slu_id, v1, p1) values (1, 111111, 0.25) returning xid::text`);
    const xid = ins.rows[0]?.xid as string;
    const eh = httpsClient({ port: g.port, ca: pki.ca.certPem, client: east });
    const wh = httpsClient({ port: g.port, ca: pki.ca.certPem, client: west });
    console.log('east /rows', (await eh.get('/cityxchange/rows?slu_id=1&cnt=1')).body);
    await db.pool.query('truncate slu_reading restart identity');
    await db.pool.query(`insert into slu_reading (slu_id, v1, p1, xid) values (3, 333333, 0.75, $1::xid8)`, [xid]);
    const w = (await wh.get('/cityxchange/rows?slu_id=3&cnt=1')).body;
    console.log('west /rows', w);
    eh.close();
    wh.close();
    expect(w).not.toContain('111111');
  });
});
