// Outside review of the stream's fast path: resumes (replay, then floor, then live) while a writer keeps inserting.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
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
  ({ gateway: g } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '10' }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

it('each resume, made while writers insert, gets every reading after its cursor exactly once and in order per writer', async () => {
  while (!g.feed.fastReady) await new Promise((r) => setTimeout(r, 20));
  const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1201' });
  await c.next('subscribed');
  let v = 1;
  let stop = false;
  const writers = [0, 1].map(async (wi) => {
    const w = await db.pool.connect();
    try {
      while (!stop) {
        const n = [1, 3, 12, 201][Math.floor(Math.random() * 4)] as number;
        const rows = Array.from({ length: n }, () => ({ slu_id: 1201, v1: v++ * 2 + wi }));
        await insertReadings(w, rows);
        await new Promise((r) => setTimeout(r, Math.random() * 15));
      }
    } finally {
      w.release();
    }
  });
  const resumes: Array<{ r: StreamClient; had: number }> = [];
  for (let i = 0; i < 12; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const had = c.readings.length;
    const cursor = c.cursor as string;
    resumes.push({ r: new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=1201&since=${encodeURIComponent(cursor)}` }), had });
  }
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await Promise.all(writers);
  const total = Number((await db.pool.query('select count(*) from slu_reading where slu_id = 1201')).rows[0].count);
  await c.until(() => c.readings.length >= total, 'live: every reading', 20_000);
  for (const { r, had } of resumes) await r.until(() => r.readings.length >= total - had, 'resume: every reading after its cursor', 20_000);
  await new Promise((r) => setTimeout(r, 1000));
  const live = c.readings.map((x) => x.v1);
  expect(live.length).toBe(total);
  expect(new Set(live).size).toBe(total);
  for (const wi of [0, 1]) {
    const mine = live.filter((x) => x % 2 === wi);
    expect(mine).toEqual([...mine].sort((a, b) => a - b));
  }
  for (const [i, { r, had }] of resumes.entries()) {
    const got = r.readings.map((x) => x.v1);
    expect([...live.slice(0, had), ...got].sort((a, b) => a - b), `resume ${i}: exactly once`).toEqual([...live].sort((a, b) => a - b));
    for (const wi of [0, 1]) {
      const mine = got.filter((x) => x % 2 === wi);
      expect(mine, `resume ${i}: writer ${wi} in order`).toEqual([...mine].sort((a, b) => a - b));
    }
    await r.close();
  }
  await c.close();
}, 120_000);
