// Outside review of the stream's fast path: a reading committed AFTER a revoke reaches the revoked partner,
// because the payload is published synchronously while the grant reload (a query) is still in flight.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { grant, revoke } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let rv: CertAndKey;
let fast: Gateway;
let slow: Gateway;
const N = 20;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  rv = await pki.client('rv');
  for (let i = 0; i < N; i++) await grant(db.pool, 'rv', 700 + i);
  ({ gateway: fast } = await startTestGateway(db.url, pki, {}, { grantAll: [] }));
  ({ gateway: slow } = await startTestGateway(db.url, pki, { FEED_FAST_PATH: 'false' }, { grantAll: [] }));
}, 60_000);
afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await db?.drop();
  await pki?.close();
});

it('no reading committed after its SLU was revoked reaches the partner', async () => {
  const q = Array.from({ length: N }, (_, i) => `slu_id=${700 + i}`).join('&');
  const sf = new StreamClient(fast.port, { ca: pki.ca.certPem, client: rv, query: q });
  const ss = new StreamClient(slow.port, { ca: pki.ca.certPem, client: rv, query: q });
  await Promise.all([sf.next('subscribed'), ss.next('subscribed')]);
  for (let i = 0; i < N - 1; i++) {
    while (!fast.feed.fastReady) await new Promise((r) => setTimeout(r, 20));
    await revoke(db.pool, 'rv', 700 + i); // committed...
    await insertReadings(db.pool, [{ slu_id: 700 + i, v1: 1000 + i }]); // ...before this reading is
    await new Promise((r) => setTimeout(r, 150));
  }
  await new Promise((r) => setTimeout(r, 1500));
  const leakedFast = sf.readings.filter((r) => r.v1 >= 1000).map((r) => r.slu_id);
  const leakedSlow = ss.readings.filter((r) => r.v1 >= 1000).map((r) => r.slu_id);
  console.log(`readings after their revoke: fast path ${leakedFast.length}/${N - 1}, FEED_FAST_PATH=false ${leakedSlow.length}/${N - 1}`);
  await Promise.all([sf.close(), ss.close()]);
  expect({ fast: leakedFast, slow: leakedSlow }).toEqual({ fast: [], slow: [] });
}, 60_000);
