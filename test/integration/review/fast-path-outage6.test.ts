// Outside review of the stream's fast path: LISTEN and feed connections killed under a writer, with changes.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type Insertable, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
let seq = 1;
const rs = (slu: number, n: number): Insertable[] => Array.from({ length: n }, () => ({ slu_id: slu, v1: seq++ }));

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { LISTEN_RETRY_BASE_MS: '20', LISTEN_RETRY_CAP_MS: '100', FEED_POLL_INTERVAL_MS: '300' }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

it('one writer, LISTEN killed repeatedly, operator UPDATEs of other SLUs: exactly once and in commit order', async () => {
  while (!g.feed.fastReady) await new Promise((r) => setTimeout(r, 20));
  const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1101' });
  await c.next('subscribed');
  await insertReadings(db.pool, rs(1102, 5));
  const order: number[] = [];
  const w = await db.pool.connect();
  let stop = false;
  const chaos = (async () => {
    let i = 0;
    while (!stop) {
      if (i % 3 === 0) await db.pool.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sluice-listen' and datname = current_database()`);
      else await db.pool.query(`update slu_reading set v2 = v2 where slu_id = 1102`);
      i++;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 30));
    }
  })();
  try {
    for (let i = 0; i < 150; i++) {
      const n = [1, 2, 201, 3, 150][i % 5] as number;
      const batch = rs(1101, n);
      if (i % 7 === 0) {
        await w.query('begin');
        await insertReadings(w, batch.slice(0, 1));
        await insertReadings(w, batch.slice(1));
        await w.query('commit');
      } else await insertReadings(w, batch);
      order.push(...batch.map((r) => r.v1 as number));
    }
  } finally {
    stop = true;
    await chaos;
    w.release();
  }
  await c.until(() => c.readings.length >= order.length, 'every reading', 30_000);
  await new Promise((r) => setTimeout(r, 1000));
  const got = c.readings.map((r) => r.v1);
  console.log(`fast rows ${g.feed.stats.fastRows}, waited ${g.feed.stats.waited}`);
  expect(got.length).toBe(order.length);
  expect(got).toEqual(order);
  await c.close();
}, 120_000);
