import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../src/access/grant-store.ts';
import { formatReading, latestJson, READING_COLUMNS, wrapperJson, type ReadingRow } from '../../src/format/reading.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Two competing partners with disjoint grants: 'east' holds SLUs 1 and 2, 'west' holds 3 and 4. After every
// change to the table (INSERT, UPDATE of values, UPDATE of slu_id, DELETE, TRUNCATE, TRUNCATE RESTART IDENTITY)
// each endpoint must answer exactly what SQL says now, and a live stream must carry only the partner's SLUs.
// Every request is made right after the change commits: no waiting for a notification.
const EAST = [1, 2];
const WEST = [3, 4];
const END = 4_102_444_800; // 2100-01-01

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let east: CertAndKey;
let west: CertAndKey;
let eastHttp: ReturnType<typeof httpsClient>;
let westHttp: ReturnType<typeof httpsClient>;
const streams: StreamClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [east, west] = await Promise.all([pki.client('east'), pki.client('west')]);
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }, { grantAll: [] }));
  for (const id of EAST) await grant(db.pool, 'east', id);
  for (const id of WEST) await grant(db.pool, 'west', id);
  eastHttp = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: east });
  westHttp = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: west });
});
afterAll(async () => {
  eastHttp?.close();
  westHttp?.close();
  await Promise.all(streams.map((s) => s.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

let v = 100_000;
/** A unique v1 per row version, so every version's JSON differs from every other. */
const next = () => v++;

async function rowsOf(sluIds: readonly number[]): Promise<ReadingRow[]> {
  const r = await db.pool.query<ReadingRow>({
    rowMode: 'array',
    text: `select ${READING_COLUMNS} from slu_reading r where r.slu_id = any($1) order by r.slu_id, r.t desc, r.id desc`,
    values: [sluIds],
  });
  return r.rows;
}

/** What /latest, /rows and /time must answer for one partner, straight from SQL and the reference formatter. */
async function expected(sluIds: readonly number[]) {
  const rows = await rowsOf(sluIds);
  const bySlu = new Map<number, ReadingRow[]>();
  for (const r of rows) bySlu.set(r[13], [...(bySlu.get(r[13]) ?? []), r]);
  const latest = '[' + [...bySlu.keys()].sort((a, b) => a - b).map((id) => latestJson(formatReading((bySlu.get(id) as ReadingRow[])[0] as ReadingRow))).join(', ') + ']';
  const perSlu = new Map(sluIds.map((id) => [id, wrapperJson((bySlu.get(id) ?? []).map(formatReading), id)]));
  return { latest, perSlu, all: new Set(rows.map((r) => latestJson(formatReading(r)))) };
}

/** Asserts every endpoint of both partners against SQL, and that the streams hold nothing foreign or stale-only. */
async function checkEverything(live: { east: StreamClient; west: StreamClient; since: Set<string> }, step: string) {
  for (const [http, slus, stream] of [
    [eastHttp, EAST, live.east],
    [westHttp, WEST, live.west],
  ] as const) {
    const want = await expected(slus);
    const latest = await http.get('/cityxchange/latest');
    expect(latest.status, step).toBe(200);
    expect(latest.body, `${step}: /latest`).toBe(want.latest);
    for (const id of slus) {
      const rows = await http.get(`/cityxchange/rows?slu_id=${id}&cnt=10000`);
      expect(rows.body, `${step}: /rows?slu_id=${id}`).toBe(want.perSlu.get(id));
      const time = await http.get(`/cityxchange/time?slu_id=${id}&begin=0&end=${END}`);
      expect(time.body, `${step}: /time?slu_id=${id}`).toBe(want.perSlu.get(id));
    }
    // Every row version now in the table that was written after the stream connected has arrived, once.
    const fresh = [...want.all].filter((j) => !live.since.has(canonical(j)));
    await stream.until(() => fresh.every((j) => stream.readings.some((r) => JSON.stringify(r) === canonical(j))), `${step}: stream has every new version`);
    const seen = stream.readings.map((r) => JSON.stringify(r));
    expect(new Set(seen).size, `${step}: no reading twice`).toBe(seen.length);
    expect(stream.readings.every((r) => slus.includes(r.slu_id)), `${step}: only granted SLUs on the stream`).toBe(true);
  }
}

/** The /latest text uses ", " separators; the stream client re-serialises parsed frames compactly. */
const canonical = (legacyJson: string) => JSON.stringify(JSON.parse(legacyJson));

async function openStreams(): Promise<{ east: StreamClient; west: StreamClient; since: Set<string> }> {
  const e = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: east });
  const w = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: west });
  streams.push(e, w);
  await Promise.all([e.next('subscribed'), w.next('subscribed')]);
  const before = await expected([...EAST, ...WEST]);
  return { east: e, west: w, since: new Set([...before.all].map(canonical)) };
}

const insert = (sluId: number, n = 1) => insertReadings(db.pool, Array.from({ length: n }, () => ({ slu_id: sluId, v1: next(), p1: 0.9, a1: 16.6, v2: 230 })));

describe('no stale value and no foreign reading after UPDATE, DELETE and TRUNCATE', () => {
  it('UPDATE of values, UPDATE of slu_id, DELETE, TRUNCATE and TRUNCATE RESTART IDENTITY, each checked on every endpoint and stream', async () => {
    await db.pool.query('truncate slu_reading restart identity');
    for (const id of [...EAST, ...WEST]) await insert(id, 3);
    const live = await openStreams();
    await checkEverything(live, 'warm-up'); // fills the reading cache, the /rows bodies and the latest store

    await db.pool.query(`update slu_reading set v1 = v1 + 1000000, a1 = 99.5 where slu_id = 2`);
    await checkEverything(live, 'update values of SLU 2');

    // A reading of west's SLU 3 moves to east's SLU 1: west must stop seeing it at once, east sees it as SLU 1.
    await db.pool.query(`update slu_reading set slu_id = 1, v1 = ${next()} where id = (select max(id) from slu_reading where slu_id = 3)`);
    await checkEverything(live, 'move a reading from SLU 3 to SLU 1');

    await db.pool.query(`update slu_reading set t = t - interval '1 day', v1 = ${next()} where id = (select max(id) from slu_reading where slu_id = 4)`);
    await checkEverything(live, 'move the newest reading of SLU 4 back in time');

    await db.pool.query(`delete from slu_reading where id = (select max(id) from slu_reading where slu_id = 1)`);
    await checkEverything(live, 'delete the newest reading of SLU 1');

    await db.pool.query('truncate slu_reading');
    await checkEverything(live, 'truncate');
    await insert(4, 2);
    await checkEverything(live, 'insert after truncate');

    // The reported leak: ids start again at 1, and the first ids now belong to other SLUs than before.
    await db.pool.query('truncate slu_reading restart identity');
    await checkEverything(live, 'truncate restart identity');
    for (let i = 0; i < 14; i++) await insert([3, 1, 4, 2][i % 4] as number);
    await checkEverything(live, 'inserts after truncate restart identity');
    const ids = await db.pool.query<{ id: string }>('select id::text from slu_reading order by id::bigint');
    expect(ids.rows.map((r) => Number(r.id)), "ids were reused").toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
  });

  it('a change made while LISTEN is down is still seen at once', async () => {
    await db.pool.query('truncate slu_reading restart identity');
    for (const id of [...EAST, ...WEST]) await insert(id, 2);
    const live = await openStreams();
    await checkEverything(live, 'warm-up');
    // Terminate the gateway's LISTEN connection and change the table before it comes back.
    await db.pool.query(`select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'LISTEN%' and datname = current_database()`);
    await db.pool.query(`update slu_reading set v1 = v1 + 2000000 where slu_id = 3`);
    await db.pool.query(`delete from slu_reading where slu_id = 2`);
    await checkEverything(live, 'update and delete during a LISTEN outage');
  });
});

describe('model-based: random INSERT/UPDATE/DELETE/TRUNCATE sequences, every endpoint and stream agree with SQL', () => {
  type Cmd =
    | { op: 'insert'; slu: number; n: number }
    | { op: 'update'; slu: number }
    | { op: 'move'; from: number; to: number }
    | { op: 'retime'; slu: number; days: number }
    | { op: 'delete'; slu: number; newest: boolean }
    | { op: 'truncate'; restart: boolean };
  const slu = fc.constantFrom(...EAST, ...WEST);
  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('insert' as const), slu, n: fc.integer({ min: 1, max: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('update' as const), slu }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('move' as const), from: slu, to: slu }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('retime' as const), slu, days: fc.integer({ min: -3, max: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), slu, newest: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), restart: fc.boolean() }) },
  );
  const run = async (c: Cmd): Promise<void> => {
    const newest = (id: number) => `(select id from slu_reading where slu_id = ${id} order by t desc, id desc limit 1)`;
    if (c.op === 'insert') await insert(c.slu, c.n);
    else if (c.op === 'update') await db.pool.query(`update slu_reading set v1 = ${next()}, k1 = k1 + 1 where id = ${newest(c.slu)}`);
    else if (c.op === 'move') await db.pool.query(`update slu_reading set slu_id = ${c.to}, v1 = ${next()} where id = ${newest(c.from)}`);
    else if (c.op === 'retime') await db.pool.query(`update slu_reading set t = t + make_interval(days => ${c.days}), v1 = ${next()} where id = ${newest(c.slu)}`);
    else if (c.op === 'delete') await db.pool.query(c.newest ? `delete from slu_reading where id = ${newest(c.slu)}` : `delete from slu_reading where slu_id = ${c.slu}`);
    else await db.pool.query(`truncate slu_reading${c.restart ? ' restart identity' : ''}`);
  };

  it('holds for every sequence', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 3, maxLength: 8 }), async (cmds) => {
        await db.pool.query('truncate slu_reading restart identity');
        for (const id of [...EAST, ...WEST]) await insert(id, 2);
        const live = await openStreams();
        try {
          await checkEverything(live, 'start');
          for (const [i, c] of cmds.entries()) {
            await run(c);
            await checkEverything(live, `step ${i} ${JSON.stringify(c)}`);
          }
        } finally {
          await Promise.all([live.east.close(), live.west.close()]);
        }
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});

describe('timestamps outside years 1000-9999', () => {
  it('print with a padded fraction and an era, and /latest picks the newest as time, not as text', async () => {
    await db.pool.query('truncate slu_reading restart identity');
    await insertReadings(db.pool, [{ slu_id: 1, t: '2024-05-01 10:00:00', v1: 1 }]);
    await eastHttp.get('/cityxchange/latest'); // the store holds the 2024 reading
    // Inserted later (so the feed offers it to the store last), but 6,737 years older.
    await insertReadings(db.pool, [{ slu_id: 1, t: '4713-01-01 00:00:00 BC', v1: 2 }, { slu_id: 2, t: '0999-12-31 23:59:59', v1: 3 }]);
    await insertReadings(db.pool, [{ slu_id: 2, t: '0500-01-01 00:00:00 BC', v1: 4 }]);
    const latest = JSON.parse((await eastHttp.get('/cityxchange/latest')).body) as Array<{ slu_id: number; t: string; v1: number }>;
    expect(latest.map((r) => [r.slu_id, r.t, r.v1])).toEqual([
      [1, '2024-05-01 10:00:00.000000', 1],
      [2, '0999-12-31 23:59:59.000000', 3],
    ]);
    const rows = JSON.parse((await eastHttp.get('/cityxchange/rows?slu_id=1&cnt=10')).body) as { data: Array<{ t: string }> };
    expect(rows.data.map((r) => r.t)).toEqual(['2024-05-01 10:00:00.000000', '4713-01-01 00:00:00.000000 BC']);
    // A restart of the store (any change) orders them the same way, from SQL.
    await db.pool.query('delete from slu_reading where v1 = 3');
    const after = JSON.parse((await eastHttp.get('/cityxchange/latest')).body) as Array<{ slu_id: number; t: string }>;
    expect(after.map((r) => [r.slu_id, r.t])).toEqual([
      [1, '2024-05-01 10:00:00.000000'],
      [2, '0500-01-01 00:00:00.000000 BC'],
    ]);
  });
});
