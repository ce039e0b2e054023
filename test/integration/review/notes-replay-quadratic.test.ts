// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: the noted part of every catch-up page (resumes, and the feed's own paging after an outage) visits EVERY
// note since the cursor, whatever `after` and the SLU filter say, and each visit is an index scan of the partition's
// (xid, id) index whose start key PostgreSQL takes from `(r.xid, r.id) > (after)` rather than from `r.xid >= l.xid`:
// it walks the index from `after` up to the note's xid. So one page costs O(notes x notes), and a replay
// O(pages x notes x notes). Notes are global: every transaction that writes into the default partition or a cold one
// makes one. One unit whose clock fell back to 1999 (battery reset), writing a reading per transaction, is enough:
// 20,000 of its readings (3.5 days at 15 s) make a partner's resume of ANOTHER SLU, with 10 new rows, take seconds
// of database time (4.5 s on PostgreSQL 18, 2 s on 15, here) instead of milliseconds; a replay of everything,
// 30 s. A partner can repeat such resumes at will (4 at a time by default).
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
const NOTES = 20_000;

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

describe('a resume after many noted transactions', () => {
  it('of one SLU with 10 new readings takes milliseconds', async () => {
    const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1' });
    await s.next('subscribed');
    const cursor = s.cursor as string;
    await s.close();
    // The unit with the wrong clock: one reading per transaction, into the default partition (each one noted).
    await db.pool.query(`do $$ begin for i in 1..${NOTES} loop
        insert into slu_reading (slu_id, t, v1) values (2, timestamp '1999-01-01' + make_interval(secs => 15 * i), i); commit;
      end loop; end $$`);
    // The partner's own SLU: 10 readings, in the current (hot) partition.
    await db.pool.query(`insert into slu_reading (slu_id, v1) select 1, n from generate_series(1, 10) n`);
    const t0 = performance.now();
    const again = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=1&since=${encodeURIComponent(cursor)}` });
    await again.until(() => again.readings.length >= 10, 'the replay', 60_000);
    const ms = performance.now() - t0;
    console.log(`resume of SLU 1 (10 readings) after ${NOTES} noted transactions of SLU 2: ${ms.toFixed(0)} ms`);
    await again.close();
    expect(again.readings.map((r) => r.v1)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(ms).toBeLessThan(1000);
  }, 120_000);
});
