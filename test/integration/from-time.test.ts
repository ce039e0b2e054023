import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { SseClient } from '../setup/sse-client.ts';
import { StreamClient } from '../setup/ws-client.ts';

// from=<unix seconds>: every reading with t >= from (per SLU in time order), then live, with no gap and no
// duplicate at the seam, because the history and the live position come from one snapshot.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let acme: CertAndKey;

const FROM = Math.floor(Date.now() / 1000) - 3600; // an hour ago
const at = (secondsAfterFrom: number) => new Date((FROM + secondsAfterFrom) * 1000).toISOString().replace('T', ' ').replace('Z', '');

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  // Small pages, so a history is many frames.
  ({ gateway } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '10', REST_RATE_LIMIT: '0' }));
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

let v = 0;
async function wanted(sluIds: number[]): Promise<number[]> {
  const r = await db.pool.query<{ v1: number }>(`select v1 from slu_reading where slu_id = any($1) and t >= to_timestamp($2) at time zone 'utc' order by v1`, [sluIds, FROM]);
  return r.rows.map((x) => x.v1);
}

describe('from=: history, then live', () => {
  it('every reading since `from` exactly once, per SLU in time order, with writers committing during the backfill and one transaction open across the seam', async () => {
    const base = 10_000;
    await db.pool.query('truncate slu_reading');
    // Before `from` (never sent), and 30 per SLU after it, inserted out of time order.
    await insertReadings(db.pool, [{ slu_id: 11, t: at(-60), v1: 1 }, { slu_id: 12, t: at(-1), v1: 2 }]);
    for (const slu of [11, 12]) {
      await insertReadings(db.pool, Array.from({ length: 30 }, (_, i) => ({ slu_id: slu, t: at(((i * 7) % 30) * 10), v1: base + slu * 100 + i })));
    }
    // A writer holds its transaction open across the start: its reading is in neither snapshot until it commits.
    const open = await db.pool.connect();
    await open.query('begin');
    await insertReadings(open, [{ slu_id: 11, t: at(5), v1: 777 }]);
    const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=11,12&from=${FROM}` });
    await c.next('subscribed');
    // Writers commit while the history is being sent.
    const writer = (async () => {
      for (let i = 0; i < 10; i++) {
        await insertReadings(db.pool, [{ slu_id: 11 + (i % 2), v1: 20_000 + ++v }]);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await writer;
    await open.query('commit');
    open.release();
    const want = await wanted([11, 12]);
    await c.until(() => c.readings.length >= want.length, 'every reading since from');
    await new Promise((r) => setTimeout(r, 300));
    const got = c.readings.map((r) => r.v1);
    expect(new Set(got).size, 'no reading twice').toBe(got.length);
    expect([...got].sort((a, b) => a - b)).toEqual(want);
    expect(got).not.toContain(1);
    expect(got).not.toContain(2);
    // The history part (the 60 readings that existed at the start) arrives per SLU in time order.
    for (const slu of [11, 12]) {
      const hist = c.readings.filter((r) => r.slu_id === slu && r.v1 >= base && r.v1 < 20_000).map((r) => r.t);
      expect(hist).toHaveLength(30);
      expect([...hist].sort()).toEqual(hist);
    }
    await c.close();
  });

  it('a client cut off in the middle of the history resumes with its cursor: the rest of it, then live, exactly once', async () => {
    await db.pool.query('truncate slu_reading');
    await insertReadings(db.pool, Array.from({ length: 45 }, (_, i) => ({ slu_id: 13, t: at(i), v1: 30_000 + i })));
    const first = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=13&from=${FROM}` });
    await first.until(() => first.readings.length >= 20, 'two pages');
    first.ws.terminate();
    await first.closed;
    await insertReadings(db.pool, [{ slu_id: 13, v1: 39_999 }]);
    const rest = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=13&since=${encodeURIComponent(first.cursor as string)}` });
    await rest.until(() => first.readings.length + rest.readings.length >= 46, 'the rest');
    await new Promise((r) => setTimeout(r, 300));
    const all = [...first.readings, ...rest.readings].map((r) => r.v1);
    expect([...all].sort((a, b) => a - b)).toEqual([...Array.from({ length: 45 }, (_, i) => 30_000 + i), 39_999]);
    await rest.close();
  });

  it('works on Server-Sent Events too, and refuses a from older than the replay window (4410) or not a number (4400)', async () => {
    await db.pool.query('truncate slu_reading');
    await insertReadings(db.pool, [{ slu_id: 14, t: at(1), v1: 41 }, { slu_id: 14, t: at(2), v1: 42 }]);
    const sse = new SseClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=14&from=${FROM}` });
    await sse.until(() => sse.readings().length >= 2, 'the history over SSE');
    await insertReadings(db.pool, [{ slu_id: 14, v1: 43 }]);
    await sse.until(() => sse.readings().length >= 3, 'then live');
    expect(sse.readings().map((r) => r.v1)).toEqual([41, 42, 43]);
    sse.close();
    for (const [from, code] of [[String(FROM - 8 * 86_400), 4410], ['yesterday', 4400]] as const) {
      const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=14&from=${from}` });
      await c.until(() => c.closeCode !== undefined, `the refusal of from=${from}`);
      expect(c.closeCode).toBe(code);
    }
  });
});
