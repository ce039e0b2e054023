// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
// Plain SQL that PostgreSQL 15 understands too (no RETURNING OLD, which is 18's).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: concurrent writers + operator UPDATE / slu_id moves / DELETE / TRUNCATE [RESTART IDENTITY] + LISTEN
// kills, while two partners with disjoint grants hammer /latest, /rows, /time and hold streams (plus resumes).
// Every row version has a unique v1. Invariants checked:
//  - REST: no answer to a request that STARTED after a version's death was committed contains that version;
//  - REST and stream: no reading of an SLU the partner is not granted (by the version's slu_id);
//  - stream: frames received > 200 ms after a version's death do not contain it (reported separately).
const EAST = [1, 2];
const WEST = [3, 4];
let db: TestDatabase;
let pki: TestPki;
let east: CertAndKey;
let west: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [east, west] = await Promise.all([pki.client('east'), pki.client('west')]);
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_PAGE_ROWS: '50' }, { grantAll: [] }));
  for (const id of EAST) await grant(db.pool, 'east', id);
  for (const id of WEST) await grant(db.pool, 'west', id);
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

let vSeq = 1_000_000;
const nextV = () => vSeq++;
const sluOf = new Map<number, number>(); // v1 -> slu of that version
const diedAt = new Map<number, number>(); // v1 -> time the death was committed (performance.now())

describe('chaos', () => {
  it('invariants under concurrent change', async () => {
    const DURATION = Number(process.env.SLUICE_CHAOS_MS ?? 10_000);
    const stopAt = performance.now() + DURATION;
    const violations: string[] = [];
    const lateFrames: string[] = [];
    let requests = 0;

    const writer = async () => {
      while (performance.now() < stopAt) {
        const rows = Array.from({ length: 1 + Math.floor(Math.random() * 5) }, () => ({ slu: 1 + Math.floor(Math.random() * 4), v: nextV() }));
        for (const r of rows) sluOf.set(r.v, r.slu);
        await db.pool.query(`insert into slu_reading (slu_id, v1, p1, t) select s, v, 0.5, (now() at time zone 'utc') - make_interval(secs => (random()*100)::int) from unnest($1::int[], $2::int[]) as x(s, v)`, [rows.map((r) => r.slu), rows.map((r) => r.v)]);
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
      }
    };
    const die = (vs: number[]) => { const t = performance.now(); for (const v of vs) diedAt.set(v, t); };
    const operator = async () => {
      let n = 0;
      while (performance.now() < stopAt) {
        const op = Math.random();
        const slu = 1 + Math.floor(Math.random() * 4);
        if (op < 0.3) {
          const nv = nextV();
          const to = Math.random() < 0.5 ? slu : 1 + Math.floor(Math.random() * 4);
          sluOf.set(nv, to);
          const r = await db.pool.query<{ v: number }>(`with target as (select id, v1 from slu_reading where slu_id = $3 order by t desc, id desc limit 1 for update) update slu_reading r set v1 = $1, slu_id = $2 from target where r.id = target.id returning target.v1 as v`, [nv, to, slu]);
          die(r.rows.map((x) => x.v));
        } else if (op < 0.55) {
          const r = await db.pool.query<{ v: number }>(`delete from slu_reading where id in (select id from slu_reading where slu_id = $1 order by t desc, id desc limit 2) returning v1 as v`, [slu]);
          die(r.rows.map((x) => x.v));
        } else if (op < 0.65) {
          const c = await db.pool.connect();
          try {
            await c.query('begin');
            await c.query('lock table slu_reading in exclusive mode');
            const all = await c.query<{ v: number }>('select v1 as v from slu_reading');
            await c.query(Math.random() < 0.5 ? 'truncate slu_reading restart identity' : 'truncate slu_reading');
            await c.query('commit');
            die(all.rows.map((x) => x.v));
          } finally {
            c.release();
          }
        } else if (op < 0.72) {
          await db.pool.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sluice-listen' and datname = current_database()`);
        } else {
          // a long transaction: update now, commit later
          const c = await db.pool.connect();
          try {
            await c.query('begin');
            const nv = nextV();
            sluOf.set(nv, slu);
            const r = await c.query<{ v: number }>(`with target as (select id, v1 from slu_reading where slu_id = $2 order by id limit 1 for update) update slu_reading r set v1 = $1 from target where r.id = target.id returning target.v1 as v`, [nv, slu]);
            await new Promise((res) => setTimeout(res, 300));
            await c.query('commit');
            die(r.rows.map((x) => x.v));
          } finally {
            c.release();
          }
        }
        n++;
        await new Promise((r) => setTimeout(r, 60 + Math.random() * 80));
      }
      return n;
    };
    const check = (who: string, slus: number[], started: number, vs: Array<{ v: number; slu?: number }>, what: string) => {
      for (const { v, slu } of vs) {
        const d = diedAt.get(v);
        if (d !== undefined && d < started) violations.push(`${who} ${what}: v1 ${v} died ${Math.round(started - d)} ms before the request started`);
        const owner = sluOf.get(v);
        if (owner !== undefined && !slus.includes(owner)) violations.push(`${who} ${what}: v1 ${v} belongs to SLU ${owner}`);
        if (slu !== undefined && owner !== undefined && slu !== owner) violations.push(`${who} ${what}: v1 ${v} labelled SLU ${slu}, its version is SLU ${owner}`);
      }
    };
    const checker = async (who: string, cert: CertAndKey, slus: number[]) => {
      const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: cert });
      while (performance.now() < stopAt) {
        const slu = slus[Math.floor(Math.random() * slus.length)] as number;
        const started = performance.now();
        const kind = Math.random();
        requests++;
        if (kind < 0.34) {
          const r = await http.get('/cityxchange/latest');
          if (r.status !== 200) { violations.push(`${who} /latest ${r.status}`); continue; }
          check(who, slus, started, r.json<Array<{ v1: number; slu_id: number }>>().map((x) => ({ v: x.v1, slu: x.slu_id })), '/latest');
        } else if (kind < 0.67) {
          const r = await http.get(`/cityxchange/rows?slu_id=${slu}&cnt=${Math.random() < 0.5 ? 5 : 100}`);
          if (r.status !== 200) { violations.push(`${who} /rows ${r.status}`); continue; }
          check(who, slus, started, r.json<{ data: Array<{ v1: number }> }>().data.map((x) => ({ v: x.v1, slu })), '/rows');
        } else {
          const r = await http.get(`/cityxchange/time?slu_id=${slu}&begin=0&end=4102444800`);
          if (r.status !== 200) { violations.push(`${who} /time ${r.status}`); continue; }
          check(who, slus, started, r.json<{ data: Array<{ v1: number }> }>().data.map((x) => ({ v: x.v1, slu })), '/time');
        }
      }
      http.close();
    };
    const streamer = async (who: string, cert: CertAndKey, slus: number[]) => {
      let cursor: string | undefined;
      let frames = 0;
      while (performance.now() < stopAt) {
        const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: cert, query: cursor ? `since=${encodeURIComponent(cursor)}` : '' });
        s.ws.on('message', (data) => {
          const f = JSON.parse(String(data)) as { type: string; readings?: Array<{ v1: number; slu_id: number }> };
          if (f.type !== 'readings') return;
          frames++;
          const now = performance.now();
          for (const r of f.readings ?? []) {
            const owner = sluOf.get(r.v1);
            if (!slus.includes(r.slu_id) || (owner !== undefined && owner !== r.slu_id)) violations.push(`${who} stream: v1 ${r.v1} as SLU ${r.slu_id} (version's SLU ${owner})`);
            const d = diedAt.get(r.v1);
            if (d !== undefined && now - d > 200) lateFrames.push(`${who} stream: v1 ${r.v1} received ${Math.round(now - d)} ms after its death`);
          }
        });
        await new Promise((r) => setTimeout(r, 1000 + Math.random() * 2000));
        cursor = s.cursor ?? cursor;
        await s.close();
      }
      return frames;
    };
    const [, , ops] = await Promise.all([
      writer(), writer(), operator(),
      checker('east', east, EAST), checker('west', west, WEST), checker('east', east, EAST), checker('west', west, WEST),
      streamer('east', east, EAST), streamer('west', west, WEST),
    ]);
    console.log(`operations ${ops}, requests ${requests}, versions ${sluOf.size}, deaths ${diedAt.size}`);
    console.log(`violations (${violations.length}):\n` + [...new Set(violations)].slice(0, 30).join('\n'));
    console.log(`late stream frames (${lateFrames.length}):\n` + lateFrames.slice(0, 10).join('\n'));
    expect(violations).toEqual([]);
  }, 90_000);
});
