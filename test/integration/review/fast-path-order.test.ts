// Outside review of the stream's fast path: one writer's transactions overtake each other on one SLU.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, {}));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

// docs/stream.md: "Rows of one writer are always in order." An INSERT aimed at a partition fires no NOTIFY (documented:
// it arrives with the next poll). Before the fast path the poll's read delivered it before anything the same writer
// committed later (a read delivers in (xid, id) order); now the writer's next, ordinary INSERT overtakes it.
it('a writer\'s INSERT into the current partition, then an INSERT into slu_reading: delivered in commit order', async () => {
  const part = (await db.pool.query<{ name: string }>(`select name from sluice_partition where lo <= now() at time zone 'utc' and hi > now() at time zone 'utc'`)).rows[0]?.name;
  expect(part).toBeTruthy();
  while (!g.feed.fastReady) await new Promise((r) => setTimeout(r, 20));
  const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=801' });
  await s.next('subscribed');
  const w = await db.pool.connect();
  try {
    await w.query(`insert into ${part} (slu_id, v1) values (801, 1)`);
    await w.query(`insert into slu_reading (slu_id, v1) values (801, 2)`);
  } finally {
    w.release();
  }
  await s.until(() => s.readings.length >= 2, 'both readings', 5000);
  expect(s.readings.map((r) => r.v1)).toEqual([1, 2]);
  await s.close();
});
