import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentSnapshot } from '../../src/db/since.ts';
import { addPartitionsFrom, maintainPartitions, type PartitionPolicy } from '../../src/db/partitions.ts';
import { RANGE_QUERY } from '../../src/db/range.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Partitioned storage (sql/010, src/db/takeover.ts, src/db/partitions.ts) keeps every guarantee of the plain
// table: REST answers across partition boundaries, the stream delivers every write exactly once whether it lands
// in a hot partition, a cold one (an old t), or the default one, a resume replays them, and retention drops whole
// partitions with older cursors refused. Time is moved by giving the maintenance a "now" days ahead.

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let partner: CertAndKey;
let http: ReturnType<typeof httpsClient>;
const streams: StreamClient[] = [];
let cutoff: string; // where the first partition starts (a fresh install: the period that held "now" at migration)
let first: string; // its name
const DAY = 86_400;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme');
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '100' }));
  http = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: partner });
  const p = (await db.pool.query<{ lo: string; name: string }>(`select to_char(lo, 'YYYY-MM-DD HH24:MI:SS') as lo, name from sluice_partition order by lo limit 1`)).rows[0];
  [cutoff, first] = [p?.lo as string, p?.name as string];
});
afterAll(async () => {
  http?.close();
  await Promise.all(streams.map((s) => s.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

const at = (offsetS: number) => `(timestamp '${cutoff}' + make_interval(secs => ${offsetS}))`;
const epoch = async (sql: string) => Number((await db.pool.query<{ e: string }>(`select extract(epoch from ${sql})::bigint::text as e`)).rows[0]?.e);
async function maintain(nowOffsetS: number, extra: Partial<PartitionPolicy> = {}) {
  const now = (await db.pool.query<{ n: string }>(`select to_char(${at(nowOffsetS)}, 'YYYY-MM-DD HH24:MI:SS') as n`)).rows[0]?.n as string;
  const r = await maintainPartitions(db.pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, ...extra, now });
  await gateway.partitions.refresh();
  return r;
}
let v = 1_000_000;
async function write(sluId: number, tSql: string): Promise<number> {
  const v1 = v++;
  await db.pool.query(`insert into slu_reading (slu_id, t, v1) values ($1, ${tSql}, $2)`, [sluId, v1]);
  return v1;
}
const where = async (v1: number) => (await db.pool.query<{ p: string }>(`select tableoid::regclass::text as p from slu_reading where v1 = $1`, [v1])).rows.map((r) => r.p);

describe('partitioned storage', () => {
  it('a fresh install is partitioned from the current period on, with partitions ahead and a default one; writers insert any t as before', async () => {
    const parts = (await db.pool.query<{ p: string }>(`select inhrelid::regclass::text as p from pg_inherits where inhparent = 'slu_reading'::regclass order by 1`)).rows.map((r) => r.p);
    expect(parts).not.toContain('slu_reading_legacy'); // the empty table of a fresh install is not kept
    expect(parts).toContain('slu_reading_default');
    expect(parts.filter((p) => /^slu_reading_p\d{8}_\d{4}$/.test(p)).length).toBeGreaterThanOrEqual(3);
    expect(await where(await write(1, `(now() at time zone 'utc')`))).toEqual([first]);
    expect((await where(await write(1, at(DAY + 3600))))[0]).toMatch(/^slu_reading_p\d{8}_0000$/);
    expect(await where(await write(1, `timestamp '1999-12-31 23:59:59'`))).toEqual(['slu_reading_default']); // before every partition
    expect(await where(await write(1, `timestamp '9000-01-01'`))).toEqual(['slu_reading_default']);
    // The metric the alert on a failing maintenance watches: partitions end two to three days from now.
    const ahead = Number(/^sluice_partitions_ahead_seconds (\S+)$/m.exec(await gateway.metrics.registry.getSingleMetricAsString('sluice_partitions_ahead_seconds'))?.[1]);
    expect(ahead).toBeGreaterThan(2 * DAY);
    expect(ahead).toBeLessThanOrEqual(3 * DAY);
    // Positional inserts in the legacy column order and the default t still work.
    await db.pool.query(`insert into slu_reading values (1, '2023-01-27 17:00:07', 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 424242, 1)`);
    await db.pool.query(`insert into slu_reading (slu_id, v1) values (1, 434343)`);
    expect((await db.pool.query(`select count(*)::int as n from slu_reading where v2 = 424242 or v1 = 434343`)).rows[0].n).toBe(2);
  });

  it('/time and /rows read across partition boundaries; a range inside one partition plans only that partition', async () => {
    const slu = 501;
    const offsets = [-7200, -1, 0, 3600, DAY - 1, DAY, DAY + 3600]; // the default partition, then two partitions
    for (const o of offsets) await write(slu, at(o));
    const expected = (await db.pool.query<{ v1: number }>(`select v1 from slu_reading where slu_id = $1 order by t desc, id desc`, [slu])).rows.map((r) => r.v1);
    expect(expected).toHaveLength(offsets.length);
    const begin = await epoch(at(-7200));
    const end = await epoch(at(DAY + 3600));
    const time = await http.get(`/cityxchange/time?slu_id=${slu}&begin=${begin}&end=${end}`);
    expect(time.status).toBe(200);
    expect((JSON.parse(time.body) as { data: Array<{ v1: number }> }).data.map((r) => r.v1)).toEqual(expected);
    const rows = await http.get(`/cityxchange/rows?slu_id=${slu}&cnt=4`);
    expect((JSON.parse(rows.body) as { data: Array<{ v1: number }> }).data.map((r) => r.v1)).toEqual(expected.slice(0, 4));
    // An SLU whose readings are all older than the recent window (/rows looks there first): the whole table answers.
    const quiet = 502;
    const old = [await write(quiet, `timestamp '2020-05-05 05:05:05'`), await write(quiet, at(-DAY * 30))];
    const q = await http.get(`/cityxchange/rows?slu_id=${quiet}&cnt=5`);
    expect((JSON.parse(q.body) as { data: Array<{ v1: number }> }).data.map((r) => r.v1)).toEqual([old[1], old[0]]);
    // /rows's first query plans only the partitions from its window on (and the default one), not the older ones
    // (five days of them, made for the past the way an import would).
    const since = (await db.pool.query<{ f: string }>(`select to_char(${at(-5 * DAY)}, 'YYYY-MM-DD HH24:MI:SS') as f`)).rows[0]?.f as string;
    expect(await addPartitionsFrom(db.pool, since, DAY)).toHaveLength(5);
    const { ROWS_RECENT_QUERY } = await import('../../src/db/rows.ts');
    const recent = (await db.pool.query(`explain ${ROWS_RECENT_QUERY.keysSql}`, [slu, 4, `${cutoff}`])).rows.map((r) => r['QUERY PLAN']).join('\n');
    const total = (await db.pool.query(`select count(*)::int as n from pg_inherits where inhparent = 'slu_reading'::regclass`)).rows[0].n as number;
    const later = (await db.pool.query(`select count(*)::int as n from sluice_partition where hi > $1::timestamp`, [cutoff])).rows[0].n as number;
    expect(recent.match(/ on slu_reading_\w+/g)?.length).toBe(later + 1);
    expect(total).toBe(later + 5 + 1);
    // The plan of /time for an hour inside the first regular partition: that partition's index only.
    await db.pool.query('vacuum analyze slu_reading');
    const c = await db.pool.connect();
    let plan: string;
    try {
      await c.query('set enable_seqscan = off'); // a tiny partition would be scanned: make "no usable index" visible anyway
      plan = (await c.query(`explain ${RANGE_QUERY.fullSql}`, [slu, begin + 7200 + 60, begin + 7200 + 1800, 100])).rows.map((r) => r['QUERY PLAN']).join('\n');
    } finally {
      c.release();
    }
    expect(plan).not.toMatch(/Seq Scan/);
    expect(plan.match(/ on slu_reading_\w+/g)).toHaveLength(1);
    expect(plan).toMatch(/Index Only Scan using slu_reading_p\w+ on slu_reading_p\d{8}_0000/);
  });

  it('the stream reads hot partitions directly and cold ones through their notes: every write exactly once, live and on resume', async () => {
    const slu = 601;
    const live = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: `slu_id=${slu}` });
    streams.push(live);
    await live.next('subscribed');
    const before = live.cursor as string;
    // Two days on: the legacy partition and the first regular ones turn cold (their writes are noted from now on).
    const r = await maintain(2 * DAY);
    expect(r?.cold).toContain(first);
    const snap = await currentSnapshot(db.pool);
    expect(gateway.partitions.hotFrom(snap)).not.toBe('-infinity'); // so this test exercises the notes
    const written: number[] = [];
    written.push(await write(slu, `timestamp '2001-02-03 04:05:06'`)); // the default partition (noted)
    written.push(await write(slu, at(3600))); // cold: the first regular partition
    written.push(await write(slu, at(2 * DAY + 600))); // hot
    written.push(await write(slu, `timestamp '9000-01-01'`)); // the default partition (always noted)
    // One transaction writing hot and cold partitions at once, and another UPDATE moving a hot row into a cold one.
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      for (const t of [at(2 * DAY + 700), at(1800), `timestamp '1990-01-01'`]) {
        const v1 = v++;
        written.push(v1);
        await c.query(`insert into slu_reading (slu_id, t, v1) values ($1, ${t}, $2)`, [slu, v1]);
      }
      await c.query('commit');
    } finally {
      c.release();
    }
    const moved = await write(slu, at(2 * DAY + 800));
    await live.until(() => live.readings.filter((x) => x.v1 === moved).length === 1, 'the hot row');
    await db.pool.query(`update slu_reading set t = ${at(900)}, v2 = 77 where v1 = $1`, [moved]);
    written.push(moved);
    expect((await db.pool.query(`select count(*)::int as n from sluice_reading_late`)).rows[0].n).toBeGreaterThan(0);
    const count = (xs: StreamClient, v1: number) => xs.readings.filter((x) => x.v1 === v1).length;
    await live.until(() => written.every((w) => count(live, w) >= 1) && live.readings.some((x) => x.v1 === moved && x.v2 === 77), 'every write');
    await new Promise((res) => setTimeout(res, 500)); // a duplicate would come with the next reads
    for (const w of written) expect(count(live, w), `v1=${w}`).toBe(w === moved ? 2 : 1); // the moved row: its first and its new version
    // A resume from before all of it replays the same, exactly once each (the replay reads through the notes too).
    const again = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: `slu_id=${slu}&since=${encodeURIComponent(before)}` });
    streams.push(again);
    await again.until(() => written.every((w) => count(again, w) >= 1) && again.readings.some((x) => x.v1 === moved && x.v2 === 77), 'the replay');
    await new Promise((res) => setTimeout(res, 300));
    for (const w of written) expect(count(again, w), `v1=${w}`).toBe(1); // a replay holds the newest version only
  });

  it('retention drops whole partitions: their rows are gone from every answer, older cursors get 4410, writers go on', async () => {
    const slu = 701;
    const oldRow = await write(slu, at(3600)); // first regular partition: expires below
    const keep = await write(slu, at(3 * DAY + 60));
    const sub = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: `slu_id=${slu}` });
    streams.push(sub);
    await sub.next('subscribed');
    const old = sub.cursor as string;
    let writing = true;
    let writes = 0;
    const errors: string[] = [];
    const writer = (async () => {
      while (writing) {
        await db.pool.query(`insert into slu_reading (slu_id, v1) values (702, $1)`, [writes]).then(() => writes++, (e: Error) => errors.push(e.message));
      }
    })();
    // Four days on with a retention of two: the partitions up to the second day go, and the default partition's old rows.
    const expiring = (await db.pool.query<{ name: string }>(`select name from sluice_partition where hi <= ${at(2 * DAY)} order by hi`)).rows.map((x) => x.name);
    expect(expiring).toContain(first);
    const r = await maintain(4 * DAY, { retentionS: 2 * DAY });
    writing = false;
    await writer;
    expect(errors).toEqual([]);
    expect(writes).toBeGreaterThan(0);
    expect(r?.dropped.map((d) => d.name)).toEqual(expiring);
    expect(r?.defaultRowsDeleted).toBeGreaterThan(0); // 1999, 2001, 1990
    expect((await db.pool.query(`select count(*)::int as n from slu_reading where t < timestamp '2002-01-01'`)).rows[0].n).toBe(0);
    const parts = (await db.pool.query<{ p: string }>(`select inhrelid::regclass::text as p from pg_inherits where inhparent = 'slu_reading'::regclass`)).rows.map((x) => x.p);
    expect(parts).not.toContain(first);
    expect((await db.pool.query(`select count(*)::int as n from slu_reading where v1 = $1`, [oldRow])).rows[0].n).toBe(0);
    const rows = await http.get(`/cityxchange/rows?slu_id=${slu}&cnt=10`);
    expect((JSON.parse(rows.body) as { data: Array<{ v1: number }> }).data.map((x) => x.v1)).toEqual([keep]);
    const latest = await http.get(`/cityxchange/latest`);
    const newest = new Map((JSON.parse(latest.body) as Array<{ slu_id: number; v1: number }>).map((x) => [x.slu_id, x.v1]));
    expect(newest.get(slu)).toBe(keep);
    // Every SLU's /latest is what the table holds now (501's rows of the first two days are gone).
    const sql = await db.pool.query<{ slu_id: number; v1: number }>(`select distinct on (slu_id) slu_id, v1 from slu_reading order by slu_id, t desc, id desc`);
    expect(Object.fromEntries(newest)).toEqual(Object.fromEntries(sql.rows.map((x) => [x.slu_id, x.v1])));
    const expired = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query: `slu_id=${slu}&since=${encodeURIComponent(old)}` });
    streams.push(expired);
    await expired.closed;
    expect(expired.closeCode).toBe(4410);
  });
});
