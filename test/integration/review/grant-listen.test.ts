// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { inject } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: grant revocations travel only by NOTIFY. Data changes are also polled (FEED_POLL_INTERVAL_MS), grants
// are not: while the LISTEN connection is down (killed, and its reconnect failing, e.g. PostgreSQL at
// max_connections), a revoked partner keeps reading REST and the stream for as long as the outage lasts.
let db: TestDatabase;
let pki: TestPki;
let west: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  west = await pki.client('west');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }, { grantAll: [] }));
  for (const id of [3, 4]) await grant(db.pool, 'west', id);
  await insertReadings(db.pool, [{ slu_id: 3, v1: 1 }, { slu_id: 4, v1: 1 }]);
}, 120_000);
afterAll(async () => {
  await admin(`alter database ${db.name} allow_connections true`).catch(() => undefined);
  await g?.close();
  await db?.drop();
  await pki?.close();
});

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

describe('revocation during a LISTEN outage', () => {
  it('a revoked grant keeps working while LISTEN cannot reconnect', async () => {
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: west });
    const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: west, query: 'slu_id=3' });
    await s.next('subscribed');
    // warm the pool so REST and the feed do not need new connections
    await Promise.all(Array.from({ length: 10 }, () => http.get('/cityxchange/rows?slu_id=3&cnt=1')));
    expect((await http.get('/cityxchange/rows?slu_id=3&cnt=1')).status).toBe(200);

    // The LISTEN connection goes away and cannot come back for a while (new connections refused).
    await admin(`alter database ${db.name} allow_connections false`);
    await db.pool.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sluice-listen' and datname = current_database()`);
    await new Promise((r) => setTimeout(r, 300));
    await db.pool.query(`delete from sluice_partner_grant where partner = 'west' and slu_id = 3`);
    const revokedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    await insertReadings(db.pool, [{ slu_id: 3, v1: 4242 }]);
    await s.until(() => s.readings.some((r) => r.v1 === 4242) || s.frames.some((f) => f.code === 'SLUICE_ERR_GRANT_REVOKED'), 'either', 5000).catch(() => undefined);
    const rows = await http.get('/cityxchange/rows?slu_id=3&cnt=5');
    const latest = await http.get('/cityxchange/latest');
    console.log(`${Date.now() - revokedAt} ms after the revoke committed: /rows?slu_id=3 -> ${rows.status}; /latest -> ${latest.body.slice(0, 80)}...; stream got v1=4242: ${s.readings.some((r) => r.v1 === 4242)}; listener ${g.listener.state}`);
    await admin(`alter database ${db.name} allow_connections true`);
    const back = Date.now();
    await s.until(() => s.frames.some((f) => f.code === 'SLUICE_ERR_GRANT_REVOKED'), 'revocation after LISTEN returns', 20_000).catch(() => undefined);
    console.log(`after LISTEN may reconnect: revoked frame after ${Date.now() - back} ms; /rows -> ${(await http.get('/cityxchange/rows?slu_id=3&cnt=1')).status}`);
    http.close();
    await s.close();
    expect(rows.status, 'revoked SLU still served > 3 s after the revoke').toBe(403);
  }, 60_000);
});
