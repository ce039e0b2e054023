// Outside review of time-partitioned storage (attack 5): what HELD. This file passes (PostgreSQL 15 and 18); it is
// kept as a guard for the fixes of the other findings. One partner, one SLU, FEED_PAGE_ROWS at its minimum (10) so
// the feed pages: inserts at partition boundaries, at +-infinity, BC and year 294276 (default partition); a
// transaction that inserted into a partition before the cold marking and commits after it, and one that began
// before and inserts after; UPDATEs cold->hot, hot->cold, in place in a cold partition, default->cold, cold->default
// and in place in the default partition; a 30-row transaction over cold, default and hot partitions. Live: each
// version exactly once; WebSocket and SSE resumes from before all of it: the newest version of each row, once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPartitionsFrom, maintainPartitions } from '../../../src/db/partitions.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';
import { SseClient } from '../../setup/sse-client.ts';

let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
const DAY = 86_400;
let first: string;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_POLL_INTERVAL_MS: '100', FEED_PAGE_ROWS: '10' }));
  first = (await db.pool.query<{ lo: string }>(`select to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as lo from sluice_partition`)).rows[0]?.lo as string;
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});
const at = (h: number) => `(timestamp '${first}' + make_interval(secs => ${h * 3600}))`;
const nowAt = async (days: number) => (await db.pool.query<{ n: string }>(`select to_char(timestamp '${first}' + make_interval(secs => ${days * DAY}), 'YYYY-MM-DD HH24:MI:SS') as n`)).rows[0]?.n as string;

describe('partitioned storage edge cases that held', () => {
  it('every write and update, exactly once, live and on resume', async () => {
    const SLU = 77;
    const live = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}` });
    await live.next('subscribed');
    const before = live.cursor as string;
    // versions we expect: map v1 -> expected final (v2)
    let v = 1;
    const ins = async (c: { query: (s: string) => Promise<unknown> }, t: string) => { const x = v++; await c.query(`insert into slu_reading (slu_id, t, v1, v2) values (${SLU}, ${t}, ${x}, 0)`); return x; };
    const ids: number[] = [];
    for (const t of [at(0), at(24), at(-0.0001), `'infinity'`, `'-infinity'`, `'0044-03-15 BC'`, `'294276-12-31 23:59:59.999999'`, `'4713-01-01 BC'`, at(47.9999)]) ids.push(await ins(db.pool, t));
    // tx open across the cold marking: A inserted before, commits after; B begins before, inserts after.
    const A = await db.pool.connect();
    const B = await db.pool.connect();
    await A.query('begin'); ids.push(await ins(A, at(5)));
    await B.query('begin'); await B.query('select pg_current_xact_id()');
    const m = maintainPartitions(db.pool, { widthS: DAY, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * DAY, now: await nowAt(2) });
    await new Promise((r) => setTimeout(r, 300));
    ids.push(await ins(A, at(6)));
    await A.query('commit'); A.release();
    const rep = await m;
    await g.partitions.refresh();
    expect(rep?.cold.length).toBeGreaterThan(0);
    ids.push(await ins(B, at(7))); ids.push(await ins(B, at(50)));
    await B.query('commit'); B.release();
    // updates: cold->hot, hot->cold, cold in place, default->cold, cold->default, a non-t update in default
    await db.pool.query(`update slu_reading set t = ${at(49)}, v2 = 1 where v1 = ${ids[0]}`);
    await db.pool.query(`update slu_reading set t = ${at(1)}, v2 = 1 where v1 = ${ids[8]}`);
    await db.pool.query(`update slu_reading set v2 = 1 where v1 = ${ids[9]}`);
    await db.pool.query(`update slu_reading set t = ${at(2)}, v2 = 1 where v1 = ${ids[3]}`);
    await db.pool.query(`update slu_reading set t = '1990-01-01', v2 = 1 where v1 = ${ids[1]}`);
    await db.pool.query(`update slu_reading set v2 = 1 where v1 = ${ids[5]}`);
    // many rows in one tx spread over cold/default/hot (paging with FEED_PAGE_ROWS 7)
    const C = await db.pool.connect();
    await C.query('begin');
    for (let i = 0; i < 30; i++) ids.push(await ins(C, [at(3 + i / 10), at(48 + i / 10), `'2001-01-01'::timestamp + make_interval(secs => ${i})`][i % 3] as string));
    await C.query('commit'); C.release();
    const want = (await db.pool.query<{ v1: number; v2: number }>(`select v1, v2 from slu_reading where slu_id = ${SLU} order by v1`)).rows;
    expect(want.length).toBe(ids.length);
    const key = (r: { v1: number; [k: string]: unknown }) => `${r.v1}/${String(r.v2)}`;
    await live.until(() => want.every((w) => live.readings.some((r) => key(r) === key(w))), 'live all', 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const counts = new Map<string, number>();
    for (const r of live.readings) counts.set(key(r), (counts.get(key(r)) ?? 0) + 1);
    const dups = [...counts].filter(([, n]) => n > 1);
    expect(dups).toEqual([]);
    // resume
    const ws = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}&since=${encodeURIComponent(before)}` });
    await ws.until(() => want.every((w) => ws.readings.some((r) => key(r) === key(w))), 'resume ws', 10_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(ws.readings.map(key).sort()).toEqual(want.map(key).sort());
    await ws.close();
    const sse = new SseClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}&since=${encodeURIComponent(before)}` });
    await sse.until(() => want.every((w) => sse.readings().some((r) => key(r) === key(w))), 'resume sse', 10_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(sse.readings().map(key).sort()).toEqual(want.map(key).sort());
    sse.close();
    await live.close();
  }, 60_000);

  // Rows the default partition holds move into a partition made later for their range (sluice_add_partition):
  // same id and xid, so nothing is delivered again, and a resume from before them replays each once.
  it('rows moved out of the default partition into a new partition are not delivered again', async () => {
    const SLU = 78;
    const live = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}` });
    await live.next('subscribed');
    const before = live.cursor as string;
    const oldest = (await db.pool.query<{ lo: string }>(`select to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as lo from sluice_partition`)).rows[0]?.lo as string;
    await db.pool.query(`insert into slu_reading (slu_id, t, v1) select ${SLU}, timestamp '${oldest}' - make_interval(hours => n), n from generate_series(1, 20) n`);
    await live.until(() => live.readings.length >= 20, 'the default-partition rows');
    const from = (await db.pool.query<{ d: string }>(`select to_char(timestamp '${oldest}' - interval '3 days', 'YYYY-MM-DD') as d`)).rows[0]?.d as string;
    await addPartitionsFrom(db.pool, from, DAY);
    await g.partitions.refresh();
    expect((await db.pool.query(`select count(*)::int as n from slu_reading_default where slu_id = ${SLU}`)).rows[0].n).toBe(0);
    await db.pool.query(`insert into slu_reading (slu_id, v1) values (${SLU}, 999)`);
    await live.until(() => live.readings.some((r) => r.v1 === 999), 'the marker');
    await new Promise((r) => setTimeout(r, 500));
    expect(live.readings.map((r) => r.v1).sort((a, b) => a - b)).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), 999]);
    const again = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=${SLU}&since=${encodeURIComponent(before)}` });
    await again.until(() => again.readings.some((r) => r.v1 === 999), 'the replay');
    await new Promise((r) => setTimeout(r, 300));
    expect(again.readings.map((r) => r.v1).sort((a, b) => a - b)).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), 999]);
    await again.close();
    await live.close();
  }, 30_000);
});
