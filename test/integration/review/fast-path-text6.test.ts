// Outside review of the stream's fast path: the JSON of a reading from a payload vs. from a read, compared across
// two gateways (the same gateway's replay would serve the payload's text from its ReadingCache, keyed by (id, xid)).
import pg from 'pg';
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
let fast: Gateway;
let slow: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: fast } = await startTestGateway(db.url, pki, {}));
  ({ gateway: slow } = await startTestGateway(db.url, pki, { FEED_FAST_PATH: 'false' }));
}, 60_000);
afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await db?.drop();
  await pki?.close();
});

it('odd values and odd writer sessions: byte-identical JSON from the payload and from a read', async () => {
  while (!fast.feed.fastReady) await new Promise((r) => setTimeout(r, 20));
  const f = new StreamClient(fast.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1001' });
  const s = new StreamClient(slow.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1001' });
  await Promise.all([f.next('subscribed'), s.next('subscribed')]);
  const before = fast.feed.stats.fastRows;
  const settings = [
    `set datestyle = 'German, DMY'; set extra_float_digits = -15; set timezone = 'Pacific/Chatham'`,
    `set datestyle = 'Postgres, MDY'; set extra_float_digits = 3; set intervalstyle = 'sql_standard'; set lc_numeric = 'C'`,
    `set datestyle = 'SQL, YMD'; set extra_float_digits = 0; set timezone = '-14:00'`,
  ];
  const rows = [
    `('NaN', 'Infinity', '-Infinity', '-0', 1e-45, 3.4028235e38, 1.17549435e-38, 0.1, 123456.7, 2147483647, -2147483648, null, '2026-02-03 04:05:06')`,
    `(null, null, null, null, null, null, null, null, null, null, null, null, 'infinity')`,
    `(1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, '-infinity')`,
    `(1.5, -1.5, 16777217, 0.30000001, 1e10, 9.999999e-39, 1.4e-45, 100, -0.0, 0, 0, 0, '10000-01-01 00:00:00.5')`,
    `(0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '4713-01-01 00:00:00 BC')`,
    `(0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '0001-01-01 00:00:00.000001')`,
  ];
  let n = 0;
  for (const set of settings) {
    const w = new pg.Client({ connectionString: db.url });
    await w.connect();
    try {
      await w.query(set);
      for (const r of rows) {
        await w.query(`insert into slu_reading (slu_id, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3, t) select 1001, p1::text::real, p2::text::real, p3::text::real, k1::text::real, k2::text::real, k3::text::real, a1::text::real, a2::text::real, a3::text::real, v1::text::int, v2::text::int, v3::text::int, t::timestamp from (values ${r}) x(p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3, t)`);
        n++;
      }
    } finally {
      await w.end();
    }
  }
  await f.until(() => f.readings.length >= n, 'fast');
  await s.until(() => s.readings.length >= n, 'slow');
  expect(fast.feed.stats.fastRows - before).toBeGreaterThan(0);
  expect(f.readings.map((r) => JSON.stringify(r))).toEqual(s.readings.map((r) => JSON.stringify(r)));
  await Promise.all([f.close(), s.close()]);
});
