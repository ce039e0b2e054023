// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPartitionsFrom } from '../../../src/db/partitions.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: docs/operations.md, "Importing old readings": `npm run db -- partitions --from 2025-01-01`, then import.
// addPartitionsFrom makes partitions OLDER than every partition the gateways' PartitionMap lists, and they are hot
// (cold_xid null, no late trigger). partition-map.ts argues a stale map is harmless because "a partition it does
// not list is newer than every listed one" — false for these. Until the map's next refresh (30 s; the CLI process
// cannot refresh the gateways' maps), hotFrom() returns the lo of the oldest *listed* hot partition, so the feed's
// direct read (t >= bound) skips the new partitions and the noted read has no notes for them: every row the import
// writes in that window is never delivered live, and the feed's position moves past it for good.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '100' }));
  await g.partitions.refresh(); // the map is loaded and current before the operator acts
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('partitions added for the past (npm run db -- partitions --from)', () => {
  it('an import written right after them reaches live clients', async () => {
    const live = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=42' });
    await live.next('subscribed');
    // What `npm run db -- partitions --from` does (from another process: the gateway's map is not told).
    const oldest = (await db.pool.query<{ lo: string }>(`select to_char(min(lo) - interval '5 days', 'YYYY-MM-DD') as lo from sluice_partition`)).rows[0]?.lo as string;
    const made = await addPartitionsFrom(db.pool, oldest, 86_400);
    expect(made.length).toBeGreaterThanOrEqual(5);
    // The import: old readings into those partitions, then a current reading as a marker.
    await db.pool.query(`insert into slu_reading (slu_id, t, v1) select 42, timestamp '${oldest}' + make_interval(hours => n), n from generate_series(1, 50) n`);
    await db.pool.query(`insert into slu_reading (slu_id, v1) values (42, 999)`);
    await live.until(() => live.readings.some((r) => r.v1 === 999), 'the marker');
    // Later the map refreshes (every 30 s, or after a maintenance round): nothing brings the import back.
    await g.partitions.refresh();
    await db.pool.query(`insert into slu_reading (slu_id, v1) values (42, 1000)`);
    await live.until(() => live.readings.some((r) => r.v1 === 1000), 'the second marker');
    await new Promise((r) => setTimeout(r, 500));
    const imported = live.readings.filter((r) => r.v1 >= 1 && r.v1 <= 50).length;
    const inTable = (await db.pool.query<{ n: number }>(`select count(*)::int as n from slu_reading where slu_id = 42 and v1 between 1 and 50`)).rows[0]?.n;
    console.log(`imported rows in the table: ${inTable}; delivered to the live client: ${imported}`);
    await live.close();
    expect(inTable).toBe(50);
    expect(imported).toBe(50);
  });
});
