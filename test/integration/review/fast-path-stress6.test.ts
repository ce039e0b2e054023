// Outside review of the stream's fast path: mixed writers, resumes from every cursor on another gateway.
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
let a: Gateway;
let b: Gateway;
let seq = 1;
const rs = (slu: number, n: number): Insertable[] => Array.from({ length: n }, () => ({ slu_id: slu, v1: seq++ }));

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: a } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '50', FEED_CONFIRM_MS: '5' }));
  ({ gateway: b } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '10' }));
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
  await pki?.close();
});

it('mixed writers (savepoints rolled back, 199/200/201-row statements, multi-statement transactions): exactly once live and from every cursor on another gateway', async () => {
  const SLU = 901;
  while (!a.feed.fastReady) await new Promise((r) => setTimeout(r, 20));
  const c = new StreamClient(a.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}&slu_id=902` });
  await c.next('subscribed');
  const expected: number[] = [];
  const byWriter = new Map<number, number>();
  const writers = await Promise.all([1, 2, 3, 4].map(() => db.pool.connect()));
  try {
    await Promise.all(
      writers.map(async (w, wi) => {
        for (let round = 0; round < 6; round++) {
          await w.query('begin');
          const sizes = [[1, 3], [199], [200, 2], [201, 1], [5, 60, 5], [2]][(round + wi) % 6] as number[];
          for (const [k, n] of sizes.entries()) {
            const batch = rs(k % 2 ? 902 : SLU, n);
            if (k === 1 && wi % 2 === 0) {
              await w.query('savepoint s');
              await insertReadings(w, rs(SLU, 3)); // rolled back: never committed
              await w.query('rollback to savepoint s');
            }
            await insertReadings(w, batch);
            expected.push(...batch.map((r) => r.v1 as number));
            for (const r of batch) byWriter.set(r.v1 as number, wi);
          }
          await w.query('commit');
        }
      }),
    );
  } finally {
    for (const w of writers) w.release();
  }
  await c.until(() => c.readings.length >= expected.length, 'every reading', 30_000);
  await new Promise((r) => setTimeout(r, 1200));
  const got = c.readings.map((r) => r.v1);
  expect(got.length).toBe(expected.length);
  expect([...got].sort((x, y) => x - y)).toEqual([...expected].sort((x, y) => x - y));
  for (const wi of [0, 1, 2, 3]) for (const slu of [901, 902]) {
    const mine = c.readings.filter((r) => r.slu_id === slu && byWriter.get(r.v1) === wi).map((r) => r.v1);
    expect(mine, `writer ${wi} slu ${slu} in commit order`).toEqual([...mine].sort((x, y) => x - y));
  }
  // Resume from every cursor on gateway b (and some on a), checking each against what the client had then.
  const had: number[] = [];
  const all = new Set(expected);
  let i = 0;
  for (const f of [...c.frames]) {
    if (f.type === 'readings') had.push(...(f.readings as Array<{ v1: number }>).map((r) => r.v1));
    if (typeof f.cursor !== 'string') continue;
    const g = i++ % 3 === 0 ? a : b;
    const r = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}&slu_id=902&since=${encodeURIComponent(f.cursor)}` });
    const [marker] = rs(SLU, 1) as [Insertable];
    await r.next('subscribed');
    await insertReadings(db.pool, [marker]);
    await r.until(() => r.readings.some((x) => x.v1 === marker.v1), 'marker', 15_000);
    const after = r.readings.map((x) => x.v1).filter((v) => all.has(v));
    const union = [...had, ...after].sort((x, y) => x - y);
    expect(union, `resume ${i} (${f.type}) on ${g === a ? 'a' : 'b'}`).toEqual([...expected].sort((x, y) => x - y));
    await r.close();
  }
  await c.close();
}, 120_000);
