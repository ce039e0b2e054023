import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient, type Frame } from '../setup/ws-client.ts';

// Client messages on the stream are budgeted per connection (WS_MESSAGES_PER_S 20, WS_MESSAGE_BURST 40, the
// defaults used here): a flooding client is refused and then closed while other partners carry on, and a
// subscription change costs (and answers) the size of the message, not of the subscription.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let flooder: CertAndKey;
let other: CertAndKey;
const clients: StreamClient[] = [];
function connect(who: CertAndKey, query: string): StreamClient {
  const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: who, query });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [flooder, other] = await Promise.all([pki.client('acme'), pki.client('acme-energy')]);
  ({ gateway } = await startTestGateway(db.url, pki));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

/** Waits until the gateway's own state satisfies `pred` (it learns of a client's close a moment after the client). */
async function eventually(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const answers = (c: StreamClient, type: string) => c.frames.slice(1).filter((f) => f.type === type);

describe('client message budget', () => {
  it('serves a burst, refuses and drops what is over budget with SLUICE_ERR_MESSAGE_RATE, closes a client that keeps on with 4429', async () => {
    const c = connect(flooder, 'slu_id=1');
    await c.next('subscribed');
    for (let i = 0; i < 200; i++) c.send({ type: 'subscribe', slu_ids: [1000 + i] });
    await c.closed;
    expect(c.closeCode).toBe(4429);
    expect(c.closeReason).toMatch(/^SLUICE_ERR_MESSAGE_RATE: kept sending more than 20 messages\/s/);
    const served = answers(c, 'subscribed');
    const refused = answers(c, 'error');
    expect(served.length).toBeGreaterThanOrEqual(40);
    expect(refused).toHaveLength(20);
    for (const e of refused) expect(e).toMatchObject({ code: 'SLUICE_ERR_MESSAGE_RATE', message: expect.stringContaining('dropped') });
    // Dropped means dropped: each served message added its one SLU, the refused ones none.
    served.forEach((f, i) => expect(f.count).toBe(2 + i));
    expect(new Set(served.flatMap((f) => f.added as number[])).size).toBe(served.length);
  });

  it('cuts off a client of 10,000 SLUs flooding large subscribes while another partner\'s REST and stream carry on', async () => {
    const watcher = connect(other, 'slu_id=5');
    await watcher.next('subscribed');
    const c = connect(flooder, 'slu_id=1');
    await c.next('subscribed');
    // 10,000 SLUs in four messages of 2,500 ids (each under WS_MAX_PAYLOAD_BYTES).
    for (let k = 0; k < 4; k++) c.send({ type: 'subscribe', slu_ids: Array.from({ length: 2500 }, (_, i) => k * 2500 + i) });
    await c.until(() => answers(c, 'subscribed').length === 4, 'four subscribe answers');
    const four = answers(c, 'subscribed');
    // Answers name what the message added (not the whole subscription) and the total.
    expect(four.map((f) => (f.added as number[]).length)).toEqual([2499, 2500, 2500, 2500]);
    expect(four.at(-1)).toMatchObject({ count: 10_000 });
    expect(four.every((f) => !('slu_ids' in f))).toBe(true);

    // 2,000 subscribes of 2,000 ids each, sent as fast as the socket takes them.
    const big = JSON.stringify({ type: 'subscribe', slu_ids: Array.from({ length: 2000 }, (_, i) => i) });
    for (let i = 0; i < 2000; i++) c.send(big);
    const rest = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: other });
    try {
      await insertReadings(db.pool, [{ slu_id: 5, v1: 4242 }]);
      const r = await rest.get('/cityxchange/rows?slu_id=5&cnt=1');
      expect(r.status).toBe(200);
      expect(r.json<{ data: Array<{ v1: number }> }>().data[0]).toMatchObject({ v1: 4242 });
      await watcher.until(() => watcher.readings.some((x) => x.v1 === 4242), 'the other partner\'s reading');
    } finally {
      rest.close();
    }
    await c.closed;
    expect(c.closeCode).toBe(4429);
    expect(answers(c, 'error').every((f) => f.code === 'SLUICE_ERR_MESSAGE_RATE')).toBe(true);
    // The served ones among the flood changed nothing and said so briefly.
    for (const f of answers(c, 'subscribed').slice(4)) expect(f).toMatchObject({ added: [], count: 10_000 });

    // The hub forgot every one of the flooder's 10,000 SLUs; the watcher's SLU is still indexed and served.
    await eventually(() => gateway.hub.size === 1, 'the flooder to leave the hub');
    expect(gateway.hub.indexedSlus).toBe(1);
    await insertReadings(db.pool, [{ slu_id: 5, v1: 4343 }]);
    await watcher.until(() => watcher.readings.some((x) => x.v1 === 4343), 'a reading after the flood');
    await watcher.close();
    await eventually(() => gateway.hub.size === 0, 'the watcher to leave the hub');
    expect(gateway.hub.indexedSlus).toBe(0);
  }, 60_000);
});

describe('subscription changes', () => {
  const SENTINEL = 99;
  const change = fc.record({ type: fc.constantFrom('subscribe', 'unsubscribe'), slu_ids: fc.array(fc.integer({ min: 0, max: 11 }), { minLength: 1, maxLength: 6 }) });

  it('after any subscribe/unsubscribe/disconnect sequence each client gets exactly its SLUs, and the hub keeps nothing of those who left', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(change, { maxLength: 25 }), { minLength: 1, maxLength: 3 }), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), async (scripts, leaveEarly) => {
        run++;
        const cs = scripts.map(() => connect(other, `slu_id=${SENTINEL}`));
        await Promise.all(cs.map((c) => c.next('subscribed', 0)));
        const models = cs.map(() => new Set([SENTINEL]));
        await Promise.all(
          scripts.map(async (script, k) => {
            const c = cs[k] as StreamClient;
            const model = models[k] as Set<number>;
            for (const m of script) {
              const from = c.frames.length;
              c.send(m);
              const f: Frame = await c.next(m.type === 'subscribe' ? 'subscribed' : 'unsubscribed', from);
              const changed = [...new Set(m.slu_ids)].filter((id) => (m.type === 'subscribe' ? !model.has(id) : model.has(id))).sort((a, b) => a - b);
              for (const id of changed) m.type === 'subscribe' ? model.add(id) : model.delete(id);
              expect(f).toMatchObject({ [m.type === 'subscribe' ? 'added' : 'removed']: changed, count: model.size });
            }
            // What the client rebuilt from the answers is the subscription.
            expect([...(c.subscription as Set<number>)].sort((a, b) => a - b)).toEqual([...model].sort((a, b) => a - b));
          }),
        );
        // Some leave before the readings: what the hub delivers must not depend on them any more.
        const staying = cs.filter((_, k) => !leaveEarly[k] || k === 0);
        await Promise.all(cs.filter((c) => !staying.includes(c)).map((c) => c.close()));
        await eventually(() => gateway.hub.size === staying.length, 'the leavers to leave the hub');
        const union = new Set(staying.flatMap((c) => [...(models[cs.indexOf(c)] as Set<number>)]));
        expect(gateway.hub.indexedSlus).toBe(union.size);
        // One statement: one frame per client, with exactly the SLUs of its subscription.
        const marks = staying.map((c) => c.readings.length);
        await insertReadings(db.pool, [...Array.from({ length: 12 }, (_, i) => ({ slu_id: i, v1: run })), { slu_id: SENTINEL, v1: run }]);
        await Promise.all(
          staying.map(async (c, j) => {
            await c.until(() => c.readings.slice(marks[j]).some((r) => r.slu_id === SENTINEL), 'the sentinel reading');
            const got = c.readings.slice(marks[j]).map((r) => r.slu_id).sort((a, b) => a - b);
            expect(got).toEqual([...(models[cs.indexOf(c)] as Set<number>)].sort((a, b) => a - b));
          }),
        );
        await Promise.all(staying.map((c) => c.close()));
        await eventually(() => gateway.hub.size === 0 && gateway.hub.indexedSlus === 0, 'every client to leave the hub');
      }),
      { numRuns: 20 },
    );
  }, 120_000);
});
