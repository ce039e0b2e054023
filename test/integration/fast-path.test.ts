import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import { decodeCursor } from '../../src/stream/cursor.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type Insertable, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient, type StreamReadingJson } from '../setup/ws-client.ts';

// The fast path (sql/014, Feed.offer): a small statement's rows are delivered from its NOTIFY payload before any
// read, and cursors say which rows went out ahead of their snapshot. What must hold: every reading exactly once,
// live and resumed from every cursor a client was given; payload text identical to what a read returns; forged
// payloads ignored; a writer's transactions in commit order.

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let partner: CertAndKey;
const clients: StreamClient[] = [];

function connect(query: string): StreamClient {
  const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, query });
  clients.push(c);
  return c;
}

async function fastReady(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!gateway.feed.fastReady) {
    if (Date.now() > deadline) throw new Error('the fast path did not become ready');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme-energy');
  // Pages of 10 rows, so resumes from fast cursors page too (paging cursors carry what went out ahead).
  ({ gateway } = await startTestGateway(db.url, pki, { FEED_PAGE_ROWS: '10' }));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

let seq = 1;
function readings(sluId: number, n: number): Insertable[] {
  return Array.from({ length: n }, () => ({ slu_id: sluId, v1: seq++, p1: 0.944, k1: 56468.7031, a2: 8.5, v2: 230, v3: 231 }));
}

const v1s = (rs: readonly StreamReadingJson[]) => rs.map((r) => r.v1 as number);

/**
 * Resumes from every cursor `c` was given (frame by frame) and checks that what it had before that frame plus what
 * the resume delivers is `all`, exactly once. A marker inserted after the resume's start ends each check: the
 * replay comes before it, so a duplicate or a missing reading would show by then.
 */
async function resumeFromEveryCursor(c: StreamClient, slu: number, all: readonly number[]): Promise<number> {
  let checked = 0;
  const had: number[] = [];
  const markers: number[] = []; // each check's marker is in the table for the checks after it
  for (const f of [...c.frames]) {
    if (f.type === 'readings') had.push(...v1s(f.readings as StreamReadingJson[]));
    if (typeof f.cursor !== 'string') continue;
    const r = connect(`slu_id=${slu}&since=${encodeURIComponent(f.cursor)}`);
    await r.next('subscribed');
    const [marker] = readings(slu, 1) as [Insertable];
    await insertReadings(db.pool, [marker]);
    await r.until(() => r.readings.some((x) => x.v1 === marker.v1), `the marker after resuming from frame ${checked}`);
    const got = v1s(r.readings).filter((v) => v !== marker.v1);
    expect([...had, ...got].sort((a, b) => a - b), `resume from ${f.type} frame ${checked}`).toEqual([...all, ...markers].sort((a, b) => a - b));
    markers.push(marker.v1 as number);
    await r.close();
    checked++;
  }
  return checked;
}

describe('the fast path: rows from the NOTIFY payload', () => {
  it('delivers a small statement at once, with a cursor naming what went out ahead of its snapshot', async () => {
    await fastReady();
    const c = connect('slu_id=501');
    await c.next('subscribed');
    const before = gateway.feed.stats.fastRows;
    const rs = readings(501, 3);
    await insertReadings(db.pool, rs);
    await c.until(() => c.readings.length >= 3, 'three readings');
    expect(v1s(c.readings)).toEqual(v1s(rs as StreamReadingJson[]));
    expect(gateway.feed.stats.fastRows - before).toBeGreaterThanOrEqual(3);
    const first = c.frames.find((f) => f.type === 'readings');
    const cursor = decodeCursor(first?.cursor as string);
    expect(cursor?.kind).toBe('settled');
    // Unless the read overtook the payload, the frame's cursor lists the three rows as delivered ahead.
    if (cursor?.kind === 'settled' && cursor.ahead) expect([...cursor.ahead.values()].flat()).toHaveLength(1);
    // The read that follows delivers nothing again.
    const [marker] = readings(501, 1) as [Insertable];
    await insertReadings(db.pool, [marker]);
    await c.until(() => c.readings.some((r) => r.v1 === marker.v1), 'the marker');
    expect(v1s(c.readings)).toEqual([...v1s(rs as StreamReadingJson[]), marker.v1]);
    const all = v1s(c.readings);
    expect(await resumeFromEveryCursor(c, 501, all)).toBeGreaterThan(0);
  });

  it('a transaction of several statements and a statement of several payload chunks: exactly once, live and from every cursor', async () => {
    await fastReady();
    const c = connect('slu_id=502');
    await c.next('subscribed');
    const client = await db.pool.connect();
    const expected: number[] = [];
    try {
      await client.query('begin');
      for (const n of [3, 2, 150]) {
        // 150 rows are ~20 KB of payload: three NOTIFYs under the 8000-byte limit.
        const rs = readings(502, n);
        expected.push(...(rs.map((r) => r.v1) as number[]));
        await insertReadings(client, rs);
      }
      await client.query('commit');
    } finally {
      client.release();
    }
    await c.until(() => c.readings.length >= expected.length, 'every reading of the transaction');
    const [marker] = readings(502, 1) as [Insertable];
    await insertReadings(db.pool, [marker]);
    await c.until(() => c.readings.some((r) => r.v1 === marker.v1), 'the marker');
    expect(v1s(c.readings)).toEqual([...expected, marker.v1]);
    // Several frames, so resuming from the cursors between them exercises partial transactions.
    expect(c.frames.filter((f) => f.type === 'readings').length).toBeGreaterThan(1);
    const aheadCursors = c.frames.filter((f) => typeof f.cursor === 'string' && (decodeCursor(f.cursor) as { ahead?: unknown } | undefined)?.ahead);
    expect(aheadCursors.length).toBeGreaterThan(0);
    await resumeFromEveryCursor(c, 502, v1s(c.readings));
  });

  it('concurrent writers whose ids interleave, reads that page (FEED_PAGE_ROWS=10): every reading exactly once, live and from every cursor', async () => {
    await fastReady();
    const c = connect('slu_id=508');
    await c.next('subscribed');
    const before = { fast: gateway.feed.stats.fastRows, waited: gateway.feed.stats.waited };
    const writers = await Promise.all([1, 2, 3, 4].map(() => db.pool.connect()));
    const expected: number[] = [];
    try {
      await Promise.all(
        writers.map(async (w) => {
          for (let i = 0; i < 8; i++) {
            const rs = readings(508, 40);
            expected.push(...(rs.map((r) => r.v1) as number[]));
            await insertReadings(w, rs);
          }
        }),
      );
    } finally {
      for (const w of writers) w.release();
    }
    await c.until(() => c.readings.length >= expected.length, 'every reading');
    const [marker] = readings(508, 1) as [Insertable];
    await insertReadings(db.pool, [marker]);
    await c.until(() => c.readings.some((r) => r.v1 === marker.v1), 'the marker');
    expect(v1s(c.readings).sort((a, b) => a - b)).toEqual([...expected, marker.v1 as number].sort((a, b) => a - b));
    const ids = (await db.pool.query<{ id: string; v1: number }>('select id::text, v1 from slu_reading where slu_id = 508 order by id')).rows;
    console.log(`fast path under 4 concurrent writers: ${gateway.feed.stats.fastRows - before.fast} readings from payloads, ${gateway.feed.stats.waited - before.waited} chunks left to the read; ids ${ids[0]?.id}..${ids.at(-1)?.id}`);
    expect(gateway.feed.stats.fastRows - before.fast).toBeGreaterThan(0);
    await resumeFromEveryCursor(c, 508, v1s(c.readings));
  }, 60_000);

  // The replay below runs on the same gateway, whose cache the payload filled: this checks the cursor and the
  // frame, while review/fast-path-text6.test.ts compares the text against a gateway that only reads.
  it('a payload is the very text a read returns, whatever the writer session prints', async () => {
    await fastReady();
    const live = connect('slu_id=503');
    await live.next('subscribed');
    const start = live.cursor as string;
    const writer = new pg.Client({ connectionString: db.url });
    await writer.connect();
    try {
      await writer.query(`set datestyle = 'SQL, DMY'; set extra_float_digits = 0; set timezone = 'Asia/Kolkata'`);
      await writer.query(
        `insert into slu_reading (slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)
         values (503, '2026-02-03 04:05:06.000007', 0.1, 1e-7, 3.4028235e38, 56468.703125, 1.17549435e-38, -0.0, 16.6, null, 8.10000038, $1, -32768, 2147483647)`,
        [seq++],
      );
    } finally {
      await writer.end();
    }
    await live.until(() => live.readings.length >= 1, 'the reading');
    expect(gateway.feed.stats.fastRows).toBeGreaterThan(0);
    const replay = connect(`slu_id=503&since=${encodeURIComponent(start)}`);
    await replay.until(() => replay.readings.length >= 1, 'the replayed reading');
    expect(JSON.stringify(replay.readings[0])).toBe(JSON.stringify(live.readings[0]));
    expect(live.readings[0]).toMatchObject({ t: '2026-02-03 04:05:06.000007', p1: '0.100000001', v2: -32768 });
  });

  it('200 rows of the longest text a reading prints fit in payload chunks under NOTIFY\'s 8000 bytes', async () => {
    await fastReady();
    const c = connect('slu_id=2147483647');
    await c.next('subscribed');
    const listen = new pg.Client({ connectionString: db.url });
    await listen.connect();
    const sizes: number[] = [];
    listen.on('notification', (n) => n.channel === 'sluice_reading' && sizes.push(Buffer.byteLength(n.payload ?? '')));
    await listen.query('listen sluice_reading');
    try {
      await db.pool.query(
        `insert into slu_reading (slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)
         select 2147483647, '4713-01-01 00:00:00.000001 BC', -1.1754944e-38, -1.1754944e-38, -1.1754944e-38, -1.1754944e-38,
                -1.1754944e-38, -1.1754944e-38, -1.1754944e-38, -1.1754944e-38, -1.1754944e-38, -2147483648, -2147483648, n
         from generate_series(1, 200) n`,
      );
      await c.until(() => c.readings.length >= 200, '200 readings');
      expect(c.readings.map((r) => r.v3)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      await new Promise((r) => setTimeout(r, 100));
      expect(sizes.length).toBeGreaterThan(5);
      expect(Math.max(...sizes)).toBeLessThan(8000);
    } finally {
      await listen.end();
    }
  });

  it('sluice.notify_rows = off (for a database or a writer role) makes the trigger send the wake-up only: delivered by the read', async () => {
    await fastReady();
    const c = connect('slu_id=509');
    await c.next('subscribed');
    const before = gateway.feed.stats.fastRows;
    const w = await db.pool.connect();
    try {
      await w.query(`set sluice.notify_rows = off`);
      await insertReadings(w, readings(509, 3));
      await w.query(`reset sluice.notify_rows`);
    } finally {
      w.release();
    }
    await c.until(() => c.readings.length >= 3, 'three readings');
    expect(gateway.feed.stats.fastRows).toBe(before);
    expect(c.readings).toHaveLength(3);
  });

  it('ignores rows NOTIFYed by anyone but the trigger (no MAC, a wrong MAC, a replayed chunk of another statement)', async () => {
    await fastReady();
    const c = connect('slu_id=504');
    await c.next('subscribed');
    const forgedBefore = gateway.feed.stats.forged;
    const [real] = readings(504, 1) as [Insertable];
    await insertReadings(db.pool, [real]);
    await c.until(() => c.readings.length >= 1, 'the real reading');
    // A forged row for SLU 504, in the packed form, with a transaction id no snapshot sees yet.
    const xid = Number((await db.pool.query<{ x: string }>('select pg_current_snapshot()::text as x')).rows[0]?.x.split(':')[1]) + 5;
    const packed = `0.5,,,,,,,,,2026-01-01 00:00:00,666666,,,504,999999,${xid}`;
    await db.pool.query(`select pg_notify('sluice_reading', $1)`, ['r' + '0'.repeat(64) + '\n' + packed]);
    await db.pool.query(`select pg_notify('sluice_reading', $1)`, ['r' + 'ab'.repeat(32) + '\n' + packed]);
    await db.pool.query(`select pg_notify('sluice_reading', $1)`, [`r${'zz'.repeat(32)}\n${packed}`]);
    const [marker] = readings(504, 1) as [Insertable];
    await insertReadings(db.pool, [marker]);
    await c.until(() => c.readings.some((r) => r.v1 === marker.v1), 'the marker');
    expect(v1s(c.readings)).toEqual([real.v1, marker.v1]);
    expect(gateway.feed.stats.forged - forgedBefore).toBe(3);
  });

  it('a writer role with INSERT only still sends payloads (the trigger reads the key as its owner); the key is not readable to it', async () => {
    await db.pool.query(`drop role if exists fast_writer; create role fast_writer login password 'w'; grant insert on slu_reading to fast_writer`);
    const url = new URL(db.url);
    url.username = 'fast_writer';
    url.password = 'w';
    const writer = new pg.Client({ connectionString: url.toString() });
    await writer.connect();
    try {
      await expect(writer.query('select key from sluice_notify_key')).rejects.toThrow(/permission denied/);
      await fastReady();
      const c = connect('slu_id=505');
      await c.next('subscribed');
      const before = gateway.feed.stats.fastRows;
      await insertReadings(writer, readings(505, 2));
      await c.until(() => c.readings.length >= 2, 'the writer role\'s readings');
      expect(gateway.feed.stats.fastRows - before).toBeGreaterThanOrEqual(1);
    } finally {
      await writer.end();
    }
  });

  it('keeps one writer\'s transactions in commit order when a large statement (no payload) comes first', async () => {
    await fastReady();
    const c = connect('slu_id=506');
    await c.next('subscribed');
    const writer = await db.pool.connect();
    const order: number[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        const big = readings(506, 250); // over the 200-row payload limit: a wake-up, delivered by the read
        const small = readings(506, 2);
        await insertReadings(writer, big);
        await insertReadings(writer, small);
        order.push(...(big.map((r) => r.v1) as number[]), ...(small.map((r) => r.v1) as number[]));
      }
    } finally {
      writer.release();
    }
    await c.until(() => c.readings.length >= order.length, 'every reading');
    expect(v1s(c.readings)).toEqual(order);
  });

  it('refuses a cursor naming rows ahead of the database (4400), and an ill-formed one', async () => {
    const snap = (await db.pool.query<{ s: string }>('select pg_current_snapshot()::text as s')).rows[0]?.s as string;
    const [xmin, xmax] = snap.split(':').map(Number) as [number, number];
    const s = `${xmax}:${xmax}:`;
    const enc = (body: unknown) => 'c1.' + Buffer.from(JSON.stringify(body)).toString('base64url');
    // Well-formed, but the transaction it names ahead is beyond the database's present.
    const ahead = connect(`slu_id=507&since=${enc({ s, f: [[xmax + 1000, 1, 5]] })}`);
    await ahead.closed;
    expect(ahead.closeCode).toBe(4400);
    // A transaction the snapshot already sees cannot be "ahead" of it.
    const seen = connect(`slu_id=507&since=${enc({ s: `${xmin}:${xmax}:`, f: [[xmin - 1, 1, 5]] })}`);
    await seen.closed;
    expect(seen.closeCode).toBe(4400);
  });
});
