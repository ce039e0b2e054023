// Regression test from the second outside review (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { grant, revoke } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway, type LogLines } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// The NOTIFY of a revoke arrives while the gateway's query pool is saturated (here: REST requests of another
// partner waiting behind an operator's lock on slu_reading for longer than PG_CONNECT_TIMEOUT_MS). The grant
// reload fails ("could not reload grants"), Grants.changed leaves the watchers on the OLD access, and since LISTEN
// stayed up the feed's grant counter (sql/008) does not trigger a reload either: the revoked SLU keeps streaming.
let db: TestDatabase;
let pki: TestPki;
let target: CertAndKey;
let busy: CertAndKey;
let g: Gateway;
let logs: LogLines;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [target, busy] = await Promise.all([pki.client('target'), pki.client('busy')]);
  await grant(db.pool, 'target', 1);
  await grant(db.pool, 'target', 2);
  await grant(db.pool, 'busy', null);
  ({ gateway: g, logs } = await startTestGateway(db.url, pki, { PG_POOL_MAX: '4', PG_CONNECT_TIMEOUT_MS: '1000' }, { grantAll: [] }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

it('a revoke whose reload fails once is never applied to live streams', async () => {
  const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: target, query: 'slu_id=1&slu_id=2' });
  await s.next('subscribed');
  await insertReadings(db.pool, [{ slu_id: 2, v1: 1 }]);
  await s.until(() => s.readings.some((r) => r.v1 === 1), 'a reading of SLU 2 before the revoke');

  const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: busy });
  const locker = await db.pool.connect();
  await locker.query('begin');
  await locker.query('lock table slu_reading in access exclusive mode'); // e.g. an operator's TRUNCATE in a transaction
  const pending = Array.from({ length: 12 }, (_, i) => http.get(`/cityxchange/rows?slu_id=${1 + (i % 3)}&cnt=1`).catch((e: Error) => ({ status: -1, body: e.message })));
  await new Promise((r) => setTimeout(r, 600)); // every pool connection now waits on the lock
  await revoke(db.pool, 'target', 2);
  await new Promise((r) => setTimeout(r, 2000));
  await locker.query('rollback');
  locker.release();
  const statuses = (await Promise.all(pending)).map((r) => r.status);
  http.close();

  // Everything is healthy again. Give the gateway ample time (the promise is "within a second").
  await new Promise((r) => setTimeout(r, 3000));
  // Fail closed: the stream whose grants could not be re-read after the change was closed (1013, retry)...
  await s.until(() => s.closeCode !== undefined, 'the stream to be closed');
  expect(s.closeCode).toBe(1013);
  expect(s.closeReason).toMatch(/SLUICE_ERR_DB_UNAVAILABLE/);
  // ...and its resume with the cursor reads the grants afresh: SLU 1 goes on, nothing of SLU 2.
  const resumed = new StreamClient(g.port, { ca: pki.ca.certPem, client: target, query: `slu_id=1&slu_id=2&since=${encodeURIComponent(s.cursor as string)}` });
  await resumed.next('subscribed');
  await insertReadings(db.pool, [{ slu_id: 2, v1: 4242 }, { slu_id: 1, v1: 4343 }]);
  await resumed.until(() => resumed.readings.some((r) => r.v1 === 4343), 'the SLU 1 reading');
  await new Promise((r) => setTimeout(r, 300));
  expect(resumed.readings.some((r) => r.v1 === 4242), 'the resumed stream delivers the revoked SLU 2').toBe(false);
  await resumed.close();
  const rest = httpsClient({ port: g.port, ca: pki.ca.certPem, client: target });
  const rows = await rest.get('/cityxchange/rows?slu_id=2&cnt=1');
  rest.close();
  const reloadFailures = logs.filter((l) => String(l.msg).startsWith('could not reload grants')).map((l) => l.err);
  console.log({ statuses, reloadFailures, revokedFrame: s.frames.some((f) => f.code === 'SLUICE_ERR_GRANT_REVOKED'), streamGotRevokedSlu: s.readings.some((r) => r.v1 === 4242), restRowsSlu2: rows.status, listener: g.listener.state });
  await s.close();
  expect(rows.status).toBe(403); // REST reloads on its next request...
  expect(s.readings.some((r) => r.v1 === 4242), 'stream still delivers the revoked SLU 2 ~5 s after the revoke').toBe(false);
}, 40_000);
