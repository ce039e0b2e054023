// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// Resume with a cursor from before TRUNCATE ... RESTART IDENTITY, UPDATE moves and DELETEs: exactly the rows
// the table now holds that are newer than the cursor, of the partner's SLUs only. (Held up.)
let db: TestDatabase;
let pki: TestPki;
let east: CertAndKey;
let g: Gateway;
beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  east = await pki.client('east');
  ({ gateway: g } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '10' }, { grantAll: [] }));
  for (const id of [1, 2]) await grant(db.pool, 'east', id);
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('resume across TRUNCATE RESTART IDENTITY', () => {
  it('replays exactly what the table holds now', async () => {
    await insertReadings(db.pool, Array.from({ length: 30 }, (_, i) => ({ slu_id: 1 + (i % 4), v1: i })));
    const c0 = new StreamClient(g.port, { ca: pki.ca.certPem, client: east });
    const cursor = (await c0.next('subscribed')).cursor as string;
    await c0.close();
    await insertReadings(db.pool, Array.from({ length: 30 }, (_, i) => ({ slu_id: 1 + (i % 4), v1: 100 + i })));
    await db.pool.query('truncate slu_reading restart identity');
    await insertReadings(db.pool, Array.from({ length: 40 }, (_, i) => ({ slu_id: 1 + (i % 4), v1: 200 + i })));
    await db.pool.query(`update slu_reading set slu_id = 3, v1 = v1 + 1000 where v1 in (200, 204)`); // east's SLU 1 -> west's SLU 3
    await db.pool.query(`update slu_reading set slu_id = 1, v1 = v1 + 1000 where v1 in (202, 206)`); // SLU 3 -> SLU 1
    await db.pool.query(`delete from slu_reading where v1 in (201, 205)`);
    const want = (await db.pool.query<{ v1: number }>(`select v1 from slu_reading where slu_id in (1, 2) order by v1`)).rows.map((r) => r.v1);
    const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: east, query: `since=${encodeURIComponent(cursor)}` });
    await c.until(() => c.readings.length >= want.length, 'replay', 10_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const got = c.readings.map((r) => r.v1).sort((a, b) => a - b);
    await c.close();
    console.log('want', want.length, 'got', got.length);
    expect(got).toEqual(want);
    expect(c.readings.every((r) => r.slu_id === 1 || r.slu_id === 2)).toBe(true);
  });
});
