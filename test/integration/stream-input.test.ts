import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let partner: CertAndKey;
const clients: StreamClient[] = [];
function connect(query?: string, path?: string): StreamClient {
  const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, ...(query !== undefined ? { query } : {}), ...(path ? { path } : {}) });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  partner = await pki.client('acme-energy');
  ({ gateway } = await startTestGateway(db.url, pki, { WS_MAX_SLUS: '100', WS_MAX_PAYLOAD_BYTES: '4096' }));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('bad input on the stream', () => {
  it.each([
    ['not json', 'SLUICE_ERR_BAD_MESSAGE', /not valid JSON/],
    ['[1,2]', 'SLUICE_ERR_BAD_MESSAGE', /JSON object/],
    ['{"type":"dance"}', 'SLUICE_ERR_BAD_MESSAGE', /unknown message type "dance"/],
    ['{"type":"subscribe","slu_ids":[-1]}', 'SLUICE_ERR_BAD_MESSAGE', /slu_ids/],
    ['{"type":"subscribe","slu_ids":[1.5]}', 'SLUICE_ERR_BAD_MESSAGE', /slu_ids/],
    ['{"type":"subscribe","slu_ids":["1"]}', 'SLUICE_ERR_BAD_MESSAGE', /slu_ids/],
    ['{"type":"subscribe","slu_ids":[]}', 'SLUICE_ERR_BAD_MESSAGE', /slu_ids/],
    ['{"type":"subscribe"}', 'SLUICE_ERR_BAD_MESSAGE', /exactly one of/],
    ['{"type":"subscribe","slu_ids":[1],"extra":1}', 'SLUICE_ERR_BAD_MESSAGE', /extra|Unrecognized/i],
    [JSON.stringify({ type: 'subscribe', slu_ids: Array.from({ length: 150 }, (_, i) => i) }), 'SLUICE_ERR_TOO_MANY_SLUS', /at most 100 SLUs/],
  ])('%s -> error frame %s, connection stays usable', async (text, code, message) => {
    const c = connect('slu_id=1');
    await c.next('subscribed');
    const mark = c.frames.length;
    c.send(text);
    const err = await c.next('error', mark);
    expect(err).toMatchObject({ type: 'error', code });
    expect(err.message).toMatch(message);
    c.send({ type: 'ping', id: 7 });
    expect(await c.next('pong', mark)).toMatchObject({ type: 'pong', id: 7 });
    await c.close();
  });

  it('closes with 1009 on an oversized frame, 1003 on a binary frame, 4400 after repeated garbage', async () => {
    const big = connect('slu_id=1');
    await big.next('subscribed');
    big.send('x'.repeat(5000));
    await big.closed;
    expect(big.closeCode).toBe(1009);

    const bin = connect('slu_id=1');
    await bin.next('subscribed');
    bin.ws.send(Buffer.from([1, 2, 3]));
    await bin.closed;
    expect(bin.closeCode).toBe(1003);

    const spam = connect('slu_id=1');
    await spam.next('subscribed');
    for (let i = 0; i < 25; i++) spam.send('nope');
    await spam.closed;
    expect(spam.closeCode).toBe(4400);
  });

  it.each([
    ['slu_id=abc', 4400, /SLUICE_ERR_PARAM/],
    ['slu_id=-3', 4400, /SLUICE_ERR_PARAM/],
    ['slu_id=1,,2', 4400, /SLUICE_ERR_PARAM/],
    [`slu_id=${Array.from({ length: 101 }, (_, i) => i).join(',')}`, 4400, /SLUICE_ERR_TOO_MANY_SLUS/],
    ['since=garbage', 4400, /SLUICE_ERR_CURSOR_INVALID/],
    ['since=c1.' + Buffer.from('{"s":"5:3:"}').toString('base64url'), 4400, /SLUICE_ERR_CURSOR_INVALID/],
    // Well-formed but impossible cursors: refused when decoded, before any query (the first closed with 1011).
    ['since=c1.' + Buffer.from('{"s":"1:1:","q":"0:0:","x":0,"i":0}').toString('base64url'), 4400, /SLUICE_ERR_CURSOR_INVALID/],
    ['since=c1.' + Buffer.from('{"s":"5:10:","q":"5:12:7","x":10,"i":1}').toString('base64url'), 4400, /SLUICE_ERR_CURSOR_INVALID/],
    ['since=c1.' + Buffer.from('{"s":"5:10:7","q":"7:12:7,11","x":11,"i":3}').toString('base64url'), 4400, /SLUICE_ERR_CURSOR_INVALID/],
    ['since=c1.' + Buffer.from('{"s":"0:0:"}').toString('base64url'), 4400, /SLUICE_ERR_CURSOR_INVALID/],
    ['since=c1.' + Buffer.from('{"s":"1:1:","extra":{}}').toString('base64url'), 4400, /SLUICE_ERR_CURSOR_INVALID/],
  ])('connect with %s -> error frame and close %i with a reason', async (query, code, reason) => {
    const c = connect(query);
    await c.closed;
    expect(c.closeCode).toBe(code);
    expect(c.closeReason).toMatch(reason);
    expect(c.frames.find((f) => f.type === 'error')).toBeDefined();
  });

  it('refuses upgrades on other paths (404) and without a client certificate (TLS handshake)', async () => {
    const wrong = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: partner, path: '/cityxchange/other' });
    await expect(wrong.opened).rejects.toThrow(/404/);
    const anon = new StreamClient(gateway.port, { ca: pki.ca.certPem });
    await expect(anon.opened).rejects.toThrow();
    const foreign = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: await pki.foreignClient('x') });
    await expect(foreign.opened).rejects.toThrow();
    void tls;
  });

  it('after all of that, the process still streams to a good client', async () => {
    const c = connect('slu_id=5');
    await c.next('subscribed');
    await insertReadings(db.pool, [{ slu_id: 5, v1: 42 }]);
    await c.until(() => c.readings.length === 1, 'a reading');
    expect(c.readings[0]).toMatchObject({ slu_id: 5, v1: 42 });
  });
});
