// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maintainPartitions } from '../../../src/db/partitions.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: sluice_drop_partition reads `max(xid)` of the partition (the new horizon) BEFORE `drop table` takes its
// lock. A transaction that is writing into that partition is not in the max (its row is not visible yet); DROP then
// waits for it (up to the 1 s lock_timeout), it commits, and its rows are dropped with a horizon below its xid.
// A cursor taken while it was open (so its replay would include those rows) is above the horizon: the resume is
// accepted and silently replays without them, instead of 4410. (A late writer into a partition at the retention
// edge: a backfill, a unit flushing a week of buffered readings.)
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
const DAY = 86_400;

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

describe('retention racing a late writer', () => {
  it('a cursor whose replay would hold a dropped row gets 4410', async () => {
    const first = (await db.pool.query<{ lo: string; name: string }>(`select to_char(lo, 'YYYY-MM-DD HH24:MI:SS') as lo, name from sluice_partition order by lo limit 1`)).rows[0] as { lo: string; name: string };
    const at = async (days: number) => (await db.pool.query<{ n: string }>(`select to_char(timestamp '${first.lo}' + make_interval(secs => ${days * DAY}), 'YYYY-MM-DD HH24:MI:SS') as n`)).rows[0]?.n as string;
    await db.pool.query(`insert into slu_reading (slu_id, t, v1) values (9, timestamp '${first.lo}' + interval '1 hour', 1)`);
    await maintainPartitions(db.pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, now: await at(2) }); // cold
    await g.partitions.refresh();
    // The late writer: a transaction writing into the first partition, still open.
    const late = await db.pool.connect();
    await late.query('begin');
    await late.query(`insert into slu_reading (slu_id, t, v1) values (9, timestamp '${first.lo}' + interval '2 hours', 2)`);
    const lateXid = (await late.query(`select pg_current_xact_id()::text as x`)).rows[0]?.x;
    // A partner's cursor, taken now: the late writer's row is not in it, so a resume from it must replay that row.
    const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=9' });
    await s.next('subscribed');
    const cursor = s.cursor as string;
    await s.close();
    // Retention: four days on, keep two. The drop of the first partition waits for the late writer...
    const maintenance = maintainPartitions(db.pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, retentionS: 2 * DAY, now: await at(4) });
    for (let i = 0; i < 100; i++) {
      const waiting = await db.pool.query(`select 1 from pg_locks where relation = to_regclass($1) and not granted`, [first.name]);
      if (waiting.rowCount) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await late.query('commit'); // ...which commits within the lock timeout
    late.release();
    const report = await maintenance;
    expect(report?.dropped.map((d) => d.name)).toContain(first.name);
    expect((await db.pool.query(`select 1 from slu_reading where v1 = 2 and slu_id = 9`)).rowCount).toBe(0); // dropped
    // The resume from before the drop.
    const again = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=9&since=${encodeURIComponent(cursor)}` });
    await Promise.race([again.closed, new Promise((r) => setTimeout(r, 1500))]);
    const horizon = (await db.pool.query(`select purged_below::text as h from sluice_horizon`)).rows[0]?.h;
    console.log(`late writer ${lateXid}, horizon ${horizon}, cursor ${Buffer.from(cursor.slice(3), 'base64url').toString()}; resume closed with ${again.closeCode ?? '(still open, replaying)'}`);
    await again.close();
    expect(again.closeCode).toBe(4410);
  }, 30_000);
});
