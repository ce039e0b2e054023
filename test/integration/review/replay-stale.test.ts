// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: live batches buffered by a session while its resume replays are released after the replay, without
// looking at what was UPDATEd or DELETEd meanwhile. A slow-reading (or simply long) resume therefore delivers,
// seconds after the change committed, a deleted reading and a reading under an SLU it no longer belongs to.
let db: TestDatabase;
let pki: TestPki;
let east: CertAndKey;
let west: CertAndKey;
let g: Gateway;
const BACKLOG = 60_000;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [east, west] = await Promise.all([pki.client('east'), pki.client('west')]);
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', FEED_PAGE_ROWS: '500' }, { grantAll: [] }));
  for (const id of [1, 2]) await grant(db.pool, 'east', id);
  for (const id of [3, 4]) await grant(db.pool, 'west', id);
}, 120_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('stale frames from the resume buffer', () => {
  it('a reading deleted / moved to another partner during a resume is still sent to the resuming partner afterwards', async () => {
    const first = new StreamClient(g.port, { ca: pki.ca.certPem, client: east, query: 'slu_id=1' });
    const cursor = (await first.next('subscribed')).cursor as string;
    await first.close();
    await db.pool.query(`insert into slu_reading (slu_id, v1, p1) select 1, n, 0.5 from generate_series(1, ${BACKLOG}) n`);
    // let the feed publish the backlog first, so east's session does not overflow its buffer with it
    await until(() => g.hub.stats.readingsIn >= BACKLOG, 'feed read the backlog');

    const westLive = new StreamClient(g.port, { ca: pki.ca.certPem, client: west, query: 'slu_id=3' });
    await westLive.next('subscribed');

    // east resumes and does not read for a while: the replay stalls on a full socket.
    const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: east, query: `slu_id=1&since=${encodeURIComponent(cursor)}` });
    await c.opened;
    const sock = (c.ws as unknown as { _socket: Socket })._socket;
    sock.pause();
    await until(() => g.replays.running === 1, 'replay running');
    await new Promise((r) => setTimeout(r, 1500));

    // Live readings arrive (buffered by east's session), then the operator deletes one and moves the other to SLU 3.
    await db.pool.query(`insert into slu_reading (slu_id, v1, p1) values (1, 900001, 0.9), (1, 900002, 0.9)`);
    await new Promise((r) => setTimeout(r, 500)); // the feed has read them: they sit in east's buffer
    await db.pool.query(`delete from slu_reading where v1 = 900001`);
    await db.pool.query(`update slu_reading set slu_id = 3 where v1 = 900002`);
    const committedAt = Date.now();
    const table = await db.pool.query(`select slu_id, v1 from slu_reading where v1 in (900001, 900002)`);
    console.log('table now:', JSON.stringify(table.rows));
    await westLive.until(() => westLive.readings.some((r) => r.v1 === 900002), 'west sees the moved reading');
    await new Promise((r) => setTimeout(r, 1500));

    sock.resume();
    await c.until(() => c.readings.some((r) => r.v1 === 900001 || r.v1 === 900002) || c.readings.length >= BACKLOG, "east done", 60_000);
    await new Promise((r) => setTimeout(r, 1000));
    const stale = c.readings.filter((r) => r.v1 === 900001 || r.v1 === 900002);
    console.log(`east received ${c.readings.length} readings; ${Date.now() - committedAt} ms after the DELETE/UPDATE committed it got:`, JSON.stringify(stale.map((r) => ({ slu_id: r.slu_id, v1: r.v1 }))));
    await c.close();
    await westLive.close();
    // The promise: once the DELETE / UPDATE committed, no frame holds the deleted reading, and the moved reading
    // goes only to partners granted SLU 3 (west), not to east as SLU 1.
    expect(stale, 'stale/foreign readings sent after the change committed').toEqual([]);
  }, 120_000);
});
