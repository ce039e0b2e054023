// Regression test from the second outside review (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// A partner at its own REPLAY_MAX_PER_PARTNER leaves a waiter in the shared queue. ReplaySlots.acquire only takes a
// free slot directly when the queue is EMPTY, and a waiter is only woken by a release(): so another partner's
// legitimate resume is queued behind the hog and refused with 1013 SLUICE_ERR_REPLAYS_BUSY although half of the
// gateway's replay slots are free.
let db: TestDatabase;
let pki: TestPki;
let hog: CertAndKey;
let victim: CertAndKey;
let g: Gateway;
const clients: StreamClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [hog, victim] = await Promise.all([pki.client('hog'), pki.client('victim')]);
  for (const p of ['hog', 'victim']) await grant(db.pool, p, null);
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', REPLAY_MAX_CONCURRENT: '8', REPLAY_MAX_PER_PARTNER: '4', REPLAY_WAIT_MS: '1500' }));
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await g?.close();
  await db?.drop();
  await pki?.close();
});

function open(who: CertAndKey, query: string): StreamClient {
  const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: who, query });
  clients.push(c);
  return c;
}
async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('a victim resume is refused 1013 while 4 of 8 replay slots are free', async () => {
  const first = open(victim, 'slu_id=1');
  const cursor = (await first.next('subscribed')).cursor as string;
  await first.close();
  await db.pool.query(`insert into slu_reading (slu_id, v1) select 1 + n % 5, n from generate_series(1, 100) n`);

  // The hog's four replays hold their slots (their page query waits on an operator's lock: a long replay).
  const locker = await db.pool.connect();
  try {
    await locker.query('begin');
    await locker.query('lock table slu_reading in access exclusive mode');
    const since = `since=${encodeURIComponent(cursor)}`;
    for (let i = 0; i < 5; i++) open(hog, since);
    await until(() => g.replays.running === 4 && g.replays.waiting === 1, 'hog: 4 running, 1 waiting');

    const v = open(victim, since);
    await v.opened;
    const t0 = Date.now();
    await until(() => v.closeCode !== undefined || g.replays.running > 4, 'victim gets a slot or is closed', 5000);
    const runningWhenVictimDecided = g.replays.running;
    console.log({ victimClose: v.closeCode, reason: v.closeReason, afterMs: Date.now() - t0, running: runningWhenVictimDecided, max: g.replays.max });
    // Expected: the victim fits (5 <= 8 in all, 1 <= 4 for its partner) and gets a slot at once.
    expect(v.closeCode, `victim refused: ${v.closeReason}`).toBeUndefined();
    expect(runningWhenVictimDecided).toBe(5);
  } finally {
    await locker.query('rollback').catch(() => undefined);
    locker.release();
  }
}, 30_000);
