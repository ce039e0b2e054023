// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { grant } from '../../../src/access/grant-store.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: crafted resume cursors. The replay window (REPLAY_WINDOW_S) and "refused before anything is scanned"
// are checked only on the cursor's `s` snapshot; the paging cursor's `q` and the `xip` list of `s` are trusted.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
const clients: StreamClient[] = [];
const OLD_ROWS = 100_000;
let oldXid = 0;

const enc = (o: unknown) => `c1.${Buffer.from(JSON.stringify(o)).toString('base64url')}`;
const dec = (c: string) => JSON.parse(Buffer.from(c.slice(3), 'base64url').toString()) as { s: string };
function open(query: string): StreamClient {
  const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme, query });
  clients.push(c);
  return c;
}
async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
async function freshCursor(): Promise<string> {
  const c = open('slu_id=1');
  const cur = (await c.next('subscribed')).cursor as string;
  await c.close();
  return cur;
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  // "Old" readings: one transaction, then the clock says everything up to now is older than the window.
  const r = await db.pool.query<{ x: string }>(`with ins as (insert into slu_reading (slu_id, t, v1, p1)
      select 1 + n % 50, timestamp '2024-01-01' + make_interval(secs => n), n, 0.5 from generate_series(1, ${OLD_ROWS}) n returning xid)
    select min(xid)::text as x from ins`);
  oldXid = Number(r.rows[0]?.x);
  await db.pool.query('vacuum analyze slu_reading');
  await db.pool.query(`update sluice_xid_clock set at = now() - interval '2 hours'`);
  await db.pool.query(`insert into sluice_xid_clock (xid, at) values (pg_current_xact_id(), now() - interval '90 minutes')`);
  ({ gateway: g } = await startTestGateway(db.url, pki, { REPLAY_WINDOW_S: '3600', FEED_PAGE_ROWS: '5000', REST_RATE_LIMIT: '0' }));
}, 120_000);
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

describe('replay window bypass with crafted cursors', () => {
  it('control: a genuine cursor from before the old rows is refused with 4410', async () => {
    const c = open(`since=${encodeURIComponent(enc({ s: `${oldXid}:${oldXid}:` }))}`);
    await c.until(() => c.closeCode !== undefined, 'close');
    expect(c.closeCode).toBe(4410);
  });

  it('a paging cursor with a fresh s and q = "1:2:" is refused, not a replay of the whole table', async () => {
    const now = dec(await freshCursor()).s;
    const crafted = enc({ s: now, q: '1:2:', x: 0, i: 0 });
    const c = open(`since=${encodeURIComponent(crafted)}`);
    await c.until(() => c.readings.length >= OLD_ROWS || c.closeCode !== undefined, 'the replay', 60_000);
    console.log('paging q=1:2: -> readings', c.readings.length, 'close', c.closeCode, c.closeReason);
    // Refused before any scan: q does not cover s, so the cursor is not one the gateway could have written (4400).
    expect(c.closeCode, 'must be refused').toBe(4400);
  }, 90_000);

  it('settled cursor with a fresh xmax but xip = [an old xid] replays that old transaction', async () => {
    const now = dec(await freshCursor()).s;
    const [, xmax] = now.split(':');
    const crafted = enc({ s: `${oldXid}:${xmax}:${oldXid}` });
    const c = open(`since=${encodeURIComponent(crafted)}`);
    await c.until(() => c.readings.length >= OLD_ROWS || c.closeCode !== undefined, 'the replay', 60_000);
    console.log('settled xip=[old] -> readings', c.readings.length, 'close', c.closeCode);
    expect(c.closeCode, 'must be refused').toBe(4410);
  }, 90_000);

  it('settled cursor "2:<xmax>:2" (xip naming an ancient xid) is accepted instead of 4410 (cheap here: the planner uses a BitmapOr)', async () => {
    const now = dec(await freshCursor()).s;
    const [, xmax] = now.split(':');
    // the same query shape the replay runs, timed in PostgreSQL
    const plan = await db.pool.query(`explain (analyze, buffers, format text) select r.id from slu_reading r
      where r.xid >= '2'::xid8 and (r.xid >= '${xmax}'::xid8 or r.xid = any('{2}'::xid8[])) and r.xid < '${xmax}'::xid8
      order by r.xid, r.id limit 5000`);
    console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
    const t0 = performance.now();
    const c = open(`since=${encodeURIComponent(enc({ s: `2:${xmax}:2` }))}`);
    await c.next('subscribed');
    await until(() => g.replays.running === 0 && g.replays.waiting === 0, 'replay over');
    console.log('crafted 2:xmax:2 replay ms', performance.now() - t0, 'readings', c.readings.length, 'close', c.closeCode);
    const t1 = performance.now();
    const ok = open(`since=${encodeURIComponent(enc({ s: now }))}`);
    await ok.next('subscribed');
    await until(() => g.replays.running === 0 && g.replays.waiting === 0, 'replay over');
    console.log('genuine fresh cursor replay ms', performance.now() - t1);
    expect(c.closeCode, 'crafted cursor accepted (window not applied to xip)').toBe(4410);
  }, 60_000);

  it('paging cursor with q = "0:1:" (xmin 0 is not a valid pg_snapshot) gives 1011, not 4400', async () => {
    const now = dec(await freshCursor()).s;
    const c = open(`since=${encodeURIComponent(enc({ s: now, q: '0:1:', x: 0, i: 0 }))}`);
    await c.until(() => c.closeCode !== undefined, 'close');
    console.log('q=0:1: ->', c.closeCode, c.closeReason, JSON.stringify(c.frames));
    expect(c.closeCode).not.toBe(1011);
  });

  it('other snapshot forms PostgreSQL refuses', async () => {
    const now = dec(await freshCursor()).s;
    const [, xmax] = now.split(':');
    const out: Record<string, unknown> = {};
    for (const q of ['4294967296:4294967297:', `1:${xmax}:4294967296`, '0:0:']) {
      const c = open(`since=${encodeURIComponent(enc({ s: now, q, x: 0, i: 0 }))}`);
      await c.until(() => c.closeCode !== undefined || c.frames.length >= 2, 'close', 15_000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      out[q] = c.closeCode;
    }
    for (const s of ['0:0:', `0:${xmax}:`]) {
      const c = open(`since=${encodeURIComponent(enc({ s }))}`);
      await c.until(() => c.closeCode !== undefined, 'close', 15_000).catch(() => undefined);
      out['s=' + s] = c.closeCode;
    }
    console.log('close codes', out);
    expect(Object.values(out)).not.toContain(1011);
  }, 60_000);
});
