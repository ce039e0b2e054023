import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway, type LogLines } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { startTcpProxy } from '../setup/tcp-proxy.ts';

// Values and their exact legacy text from the partner API document (../shared/seed/partner-api.md).
const SEED_LATEST = [
  { p1: '0.944000006', p2: '0.916000009', p3: '0.930000007', k1: '56468.7031', k2: '33536.7578', k3: '40628.2188', a1: '16.6000004', a2: '8.5', a3: '8.10000038', t: '2023-03-01 08:38:08.489041', slu_id: 5, v1: 232, v2: 229, v3: 232 },
  { p1: '0.949000001', p2: '0.963', p3: '0.927999973', k1: '477586.875', k2: '463515.156', k3: '430837.5', a1: '47.9000015', a2: '41.9000015', a3: '37.5', t: '2023-03-01 08:38:20.595864', slu_id: 4, v1: 233, v2: 233, v3: 234 },
  { p1: '0.999000013', p2: '0.950999975', p3: '0.992999971', k1: '33114.4648', k2: '24200.4629', k3: '19345.0625', a1: '30.7000008', a2: '10.6000004', a3: '32.9000015', t: '2023-03-01 08:38:06.918012', slu_id: 3, v1: 227, v2: 231, v3: 231 },
];
// /rows?slu_id=1 rows of the document, newest first.
const SEED_ROWS = [
  { p1: '0', p2: '0', p3: '0', k1: '0.074767001', k2: '0.0906300023', k3: '0', a1: '0', a2: '0', a3: '0', t: '2023-01-27 17:00:06.461941', v1: 0, v2: 225, v3: 0 },
  { p1: '0', p2: '0', p3: '0', k1: '0.074767001', k2: '0.0906300023', k3: '0', a1: '0', a2: '0', a3: '0', t: '2023-01-27 16:59:51.356999', v1: 0, v2: 225, v3: 0 },
  { p1: '2.25500011', p2: '0', p3: '0', k1: '0', k2: '0', k3: '0', a1: '0.00906299986', a2: '0', a3: '0', t: '2023-01-27 16:59:36.373468', v1: 0, v2: 0, v3: 0 },
  { p1: '0', p2: '0', p3: '0', k1: '0.074767001', k2: '0.0906300023', k3: '0', a1: '0', a2: '0', a3: '0', t: '2023-01-27 16:59:06.290986', v1: 0, v2: 225, v3: 0 },
];
const LATEST_KEYS = ['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3', 't', 'slu_id', 'v1', 'v2', 'v3'];
const ROW_KEYS = ['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3', 't', 'v1', 'v2', 'v3'];

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let logs: LogLines;
let client: ReturnType<typeof httpsClient>;
const B = '/cityxchange';

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  // A database whose DateStyle is not ISO: the gateway must print t in the legacy form regardless.
  await db.pool.query(`alter database "${db.name}" set datestyle = 'SQL, DMY'`);
  ({ gateway, logs } = await startTestGateway(db.url, pki));
  client = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: await pki.client('acme-energy') });
  await insertReadings(db.pool, [...SEED_LATEST, ...SEED_ROWS.map((r) => ({ ...r, slu_id: 1 }))]);
});

afterAll(async () => {
  client?.close();
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('GET /latest', () => {
  it('returns the newest reading of each SLU in the legacy shape, field order and formats', async () => {
    const res = await client.get(`${B}/latest`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json<Array<Record<string, unknown>>>();
    expect(body.map((r) => r.slu_id)).toEqual([1, 3, 4, 5]);
    for (const r of body) expect(Object.keys(r)).toEqual(LATEST_KEYS);
    expect(body.find((r) => r.slu_id === 1)).toEqual({ ...SEED_ROWS[0], slu_id: 1 });
    for (const seed of SEED_LATEST) expect(body.find((r) => r.slu_id === seed.slu_id)).toEqual(seed);
    // The bytes, not only the parsed values: legacy separators and strings exactly as in the document.
    expect(res.body).toContain('{"p1": "0.944000006", "p2": "0.916000009", "p3": "0.930000007", "k1": "56468.7031"');
    expect(res.body).toContain('"t": "2023-03-01 08:38:08.489041", "slu_id": 5, "v1": 232, "v2": 229, "v3": 232}');
  });

  it('follows a new reading at once, and orders by t, not insertion', async () => {
    await insertReadings(db.pool, [{ slu_id: 4, t: '2023-03-01 08:38:19.000000', v1: 1 }]); // older than the current one
    let r = (await client.get(`${B}/latest`)).json<Array<Record<string, unknown>>>().find((x) => x.slu_id === 4);
    expect(r?.t).toBe('2023-03-01 08:38:20.595864');
    await insertReadings(db.pool, [{ slu_id: 4, t: '2023-03-01 08:40:00.000001', v1: 7, p1: 0.5 }]);
    r = (await client.get(`${B}/latest`)).json<Array<Record<string, unknown>>>().find((x) => x.slu_id === 4);
    expect(r).toMatchObject({ t: '2023-03-01 08:40:00.000001', v1: 7, p1: '0.5', p2: null });
  });
});

describe('GET /rows', () => {
  it('returns the newest cnt readings, newest first, wrapped with slu_id and without slu_id per row', async () => {
    const res = await client.get(`${B}/rows?slu_id=1&cnt=3`);
    expect(res.status).toBe(200);
    const body = res.json<{ data: Array<Record<string, unknown>>; slu_id: number }>();
    expect(Object.keys(body)).toEqual(['data', 'slu_id']);
    expect(body.slu_id).toBe(1);
    expect(body.data).toEqual(SEED_ROWS.slice(0, 3));
    for (const r of body.data) expect(Object.keys(r)).toEqual(ROW_KEYS);
    expect(res.body.startsWith('{"data": [{"p1": "0", ')).toBe(true);
  });

  it('returns all there is when cnt exceeds it, and an empty list for an unknown SLU', async () => {
    expect((await client.get(`${B}/rows?slu_id=1&cnt=10000`)).json<{ data: unknown[] }>().data).toHaveLength(4);
    const res = await client.get(`${B}/rows?slu_id=424242&cnt=5`);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ data: [], slu_id: 424242 });
  });

  it('defines t at microsecond precision and defaults it to now() in UTC', async () => {
    const before = Date.now();
    await insertReadings(db.pool, [{ slu_id: 77, v1: 230 }]);
    const row = (await client.get(`${B}/rows?slu_id=77&cnt=1`)).json<{ data: Array<{ t: string }> }>().data[0];
    expect(row?.t).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/);
    const ms = Date.parse((row?.t as string).replace(' ', 'T') + 'Z');
    expect(Math.abs(ms - before)).toBeLessThan(60_000);
  });
});

describe('in-memory answers stay right', () => {
  it('/rows is read-your-writes for every insert (stored bodies are dropped when their SLU gets a reading)', async () => {
    for (let i = 0; i < 25; i++) {
      await insertReadings(db.pool, [{ slu_id: 41, v1: 1000 + i }]);
      const body = (await client.get(`${B}/rows?slu_id=41&cnt=3`)).json<{ data: Array<{ v1: number }> }>();
      expect(body.data[0]?.v1).toBe(1000 + i);
      expect(body.data).toHaveLength(Math.min(3, i + 1));
    }
  });

  it('/rows and /latest follow a DELETE (sql/005 notifies it; the gateway drops and rebuilds its state)', async () => {
    await insertReadings(db.pool, [
      { slu_id: 42, v1: 1, t: '2024-01-01 00:00:01' },
      { slu_id: 42, v1: 2, t: '2024-01-01 00:00:02' },
    ]);
    expect((await client.get(`${B}/rows?slu_id=42&cnt=5`)).json<{ data: Array<{ v1: number }> }>().data.map((r) => r.v1)).toEqual([2, 1]);
    const newest = () => client.get(`${B}/latest`).then((r) => r.json<Array<{ slu_id: number; v1: number }>>().find((x) => x.slu_id === 42)?.v1);
    expect(await newest()).toBe(2);
    await db.pool.query(`delete from slu_reading where slu_id = 42 and v1 = 2`);
    await expect.poll(async () => (await client.get(`${B}/rows?slu_id=42&cnt=5`)).json<{ data: Array<{ v1: number }> }>().data.map((r) => r.v1), { timeout: 3000 }).toEqual([1]);
    await expect.poll(newest, { timeout: 3000 }).toBe(1);
    await db.pool.query(`delete from slu_reading where slu_id = 42`);
    await expect.poll(newest, { timeout: 3000 }).toBeUndefined();
  });
});

describe('GET /time', () => {
  it('returns begin <= t <= end (Unix seconds, inclusive), newest first', async () => {
    const begin = Date.parse('2023-01-27T16:59:06.290986Z') / 1000; // not an integer: round to the bounds
    const res = await client.get(`${B}/time?slu_id=1&begin=${Math.ceil(begin)}&end=${Date.parse('2023-01-27T17:00:06Z') / 1000}`);
    expect(res.status).toBe(200);
    expect(res.json<{ data: Array<{ t: string }> }>().data.map((r) => r.t)).toEqual([
      '2023-01-27 16:59:51.356999',
      '2023-01-27 16:59:36.373468',
    ]);
    const exact = await client.get(`${B}/time?slu_id=9&begin=1700000000&end=1700000000`);
    expect(exact.json()).toEqual({ data: [], slu_id: 9 });
    await insertReadings(db.pool, [{ slu_id: 9, t: '2023-11-14 22:13:20.000000', v1: 1 }]); // 1700000000 exactly
    expect((await client.get(`${B}/time?slu_id=9&begin=1700000000&end=1700000000`)).json<{ data: unknown[] }>().data).toHaveLength(1);
  });

  it('caps a page, says so in headers, and the Link walks every row exactly once', async () => {
    const { gateway: small, logs: _l } = await startTestGateway(db.url, pki, { TIME_MAX_ROWS: '7' });
    const c = httpsClient({ port: small.port, ca: pki.ca.certPem, client: await pki.client('pager') });
    try {
      const rows = Array.from({ length: 20 }, (_, i) => ({ slu_id: 50, t: `2024-01-01 00:00:${String(i % 10).padStart(2, '0')}.000000`, v1: i }));
      await insertReadings(db.pool, rows); // pairs of equal t: paging must not split or repeat them
      const seen: number[] = [];
      let path: string | undefined = `${B}/time?slu_id=50&begin=1704067200&end=1704067300`;
      let pages = 0;
      while (path) {
        const res = await c.get(path);
        expect(res.status).toBe(200);
        const body = res.json<{ data: Array<{ v1: number; t: string }>; slu_id: number }>();
        expect(body.slu_id).toBe(50);
        seen.push(...body.data.map((r) => r.v1));
        pages++;
        const next = res.headers['x-sluice-next'] as string | undefined;
        if (next) {
          expect(res.headers['x-sluice-truncated']).toBe('true');
          expect(res.headers.link).toBe(`<${next}>; rel="next"`);
          expect(body.data).toHaveLength(7);
        } else expect(res.headers['x-sluice-truncated']).toBeUndefined();
        path = next;
      }
      expect(pages).toBe(3);
      expect([...seen].sort((a, b) => a - b)).toEqual(rows.map((r) => r.v1));
    } finally {
      c.close();
      await small.close();
    }
  });
});

describe('bad input', () => {
  it.each([
    ['/rows?cnt=5', 'slu_id', /required/],
    ['/rows?slu_id=abc&cnt=5', 'slu_id', /integer/],
    ['/rows?slu_id=1', 'cnt', /required/],
    ['/rows?slu_id=1&cnt=0', 'cnt', /between 1 and 10000/],
    ['/rows?slu_id=1&cnt=10001', 'cnt', /between 1 and 10000/],
    ['/rows?slu_id=1&cnt=2.5', 'cnt', /integer/],
    ['/time?slu_id=1&end=5', 'begin', /required/],
    ['/time?slu_id=1&begin=5', 'end', /required/],
    ['/time?slu_id=x&begin=1&end=5', 'slu_id', /integer/],
    ['/time?slu_id=1&begin=1e3&end=5', 'begin', /integer/],
    ['/time?slu_id=1&begin=10&end=5', 'begin', /after end/],
    ['/time?slu_id=1&begin=1674000000000&end=1674830999000', 'begin', /milliseconds/],
  ])('%s -> 400 naming %s', async (path, parameter, message) => {
    const res = await client.get(`${B}${path}`);
    expect(res.status).toBe(400);
    const body = res.json<Record<string, string>>();
    expect(body).toMatchObject({ statusCode: 400, code: 'SLUICE_ERR_PARAM', parameter });
    expect(body.message).toMatch(message);
  });

  it('answers unknown paths with a JSON 404', async () => {
    for (const path of ['/nope', `${B}/latest2`, '/latest']) {
      const res = await client.get(path);
      expect(res.status).toBe(404);
      expect(res.json()).toMatchObject({ statusCode: 404, code: 'SLUICE_ERR_NOT_FOUND' });
    }
  });

  it('logs every request with the partner identity (the certificate CN)', async () => {
    await client.get(`${B}/rows?slu_id=1&cnt=1`);
    const line = logs.filter((l) => l.msg === 'request').at(-1);
    expect(line).toMatchObject({ partner: 'acme-energy', method: 'GET', status: 200 });
    expect(JSON.stringify(logs)).not.toMatch(/PRIVATE KEY/);
  });
});

describe('database unreachable', () => {
  it('answers 503 JSON within a bounded time, then recovers', async () => {
    const proxy = await startTcpProxy({ host: new URL(db.url).hostname, port: Number(new URL(db.url).port) });
    const { gateway: g } = await startTestGateway(proxy.via(db.url), pki, { PG_CONNECT_TIMEOUT_MS: '1000', PG_QUERY_TIMEOUT_MS: '2000' });
    const c = httpsClient({ port: g.port, ca: pki.ca.certPem, client: await pki.client('acme-energy') });
    try {
      expect((await c.get(`${B}/rows?slu_id=1&cnt=1`)).status).toBe(200);
      proxy.cut();
      for (const path of ['/latest', '/rows?slu_id=1&cnt=1', '/time?slu_id=1&begin=0&end=1']) {
        const started = Date.now();
        const res = await c.get(`${B}${path}`);
        expect(res.status).toBe(503);
        expect(res.json()).toMatchObject({ statusCode: 503, code: 'SLUICE_ERR_DB_UNAVAILABLE' });
        expect(Date.now() - started).toBeLessThan(5000);
      }
      // The same bound for /latest as for the others: it does not wait out the feed's retry back-off (which
      // reached seconds) but tries the database once, like /rows, and answers 503 as soon as that fails. Here a
      // cut connection fails at once, so every answer is far inside PG_CONNECT_TIMEOUT_MS.
      for (let i = 0; i < 6; i++) {
        const started = Date.now();
        const res = await c.get(`${B}/latest`);
        expect(res.json()).toMatchObject({ statusCode: 503, code: 'SLUICE_ERR_DB_UNAVAILABLE' });
        expect(Date.now() - started, `/latest #${i} while the database is down`).toBeLessThan(1000);
      }
      proxy.restore();
      expect((await c.get(`${B}/rows?slu_id=1&cnt=1`)).status).toBe(200);
    } finally {
      c.close();
      await g.close();
      await proxy.close();
    }
  });
});
