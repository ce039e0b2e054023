// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: /latest (always) and a repeated /rows (body cache hit) wait for fresh.sync(): "a feed read that
// started after the request". When the feed has a backlog (a bulk insert, or the catch-up after a database or
// LISTEN outage), the read in progress pages through all of it (publishing every page to the stream clients)
// before the request's own read can start. REST latency then grows with the backlog, for every partner.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
const streams: StreamClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }));
  await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }]);
}, 60_000);
afterAll(async () => {
  for (const s of streams) await s.close();
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('REST behind the feed backlog', () => {
  it('/latest and cached /rows during a 300k-row bulk insert into another SLU', async () => {
    // a few stream clients subscribed to everything (so each feed page is also published)
    for (let i = 0; i < Number(process.env.ATTACK_STREAMS ?? 0); i++) streams.push(new StreamClient(g.port, { ca: pki.ca.certPem, client: acme }));
    await Promise.all(streams.map((s) => s.next('subscribed')));
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const time = async (p: string) => { const t0 = performance.now(); const r = await http.get(p); return { ms: Math.round(performance.now() - t0), status: r.status }; };
    await time('/cityxchange/rows?slu_id=1&cnt=1'); // build the cached body
    const quiet = { latest: await time('/cityxchange/latest'), rows: await time('/cityxchange/rows?slu_id=1&cnt=1'), time: await time('/cityxchange/time?slu_id=1&begin=0&end=4102444800') };
    await db.pool.query(`insert into slu_reading (slu_id, v1, p1, a1) select 2, n, 0.9, 16.6 from generate_series(1, 300000) n`);
    await new Promise((r) => setTimeout(r, 150)); // the NOTIFY has woken the feed: it is paging
    const t0 = performance.now();
    const [latest, rows, timeQ] = await Promise.all([time('/cityxchange/latest'), time('/cityxchange/rows?slu_id=1&cnt=1'), time('/cityxchange/time?slu_id=1&begin=0&end=4102444800')]);
    console.log('quiet:', JSON.stringify(quiet), '| during the backlog:', JSON.stringify({ latest, rows, time: timeQ }), '| feed read', Math.round(performance.now() - t0), 'ms');
    http.close();
    expect(latest.ms, '/latest waits for the whole backlog').toBeLessThan(500);
  }, 120_000);
});
