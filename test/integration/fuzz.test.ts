import fc from 'fast-check';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Property-based bad input: whatever a partner sends, it gets a 4xx or an error frame / documented close code,
// and the gateway keeps serving everyone (checked after each property with a real reading end to end).
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let acme: CertAndKey;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', WS_MAX_PAYLOAD_BYTES: '4096' }));
  await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }]);
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

const DOCUMENTED_CLOSES = new Set([1003, 1009, 4400, 4410]);

/** Values that break naive parsers: huge and tiny numbers, exponents, unicode, control characters, empties. */
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  fc.bigInt().map(String),
  fc.double().map(String),
  fc.constantFrom('', ' ', '-0', '1e309', '0x10', '1.0', '+1', '١٢', 'NaN', 'Infinity', '9'.repeat(400), '1,2', '[]', '%00', '\u0000', '2147483648', '-2147483649'),
);
const param = fc.constantFrom('slu_id', 'cnt', 'begin', 'end', 'before', 'since', 'x', '', 'slu_id[]', '__proto__', 'constructor');

async function stillServing(): Promise<void> {
  const c = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme });
  try {
    expect((await c.get('/cityxchange/rows?slu_id=1&cnt=1')).status).toBe(200);
  } finally {
    c.close();
  }
}

describe('fuzzed REST query strings', () => {
  it('always answer 200, 400 (naming a parameter), 403 or 404 with a JSON body', async () => {
    const c = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: acme });
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('/rows', '/time', '/latest', '/nope', '/rows/', '/time/x'), fc.array(fc.tuple(param, nasty), { maxLength: 6 }), async (path, pairs) => {
          const qs = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
          const r = await c.get(`/cityxchange${path}${qs ? `?${qs}` : ''}`);
          expect([200, 400, 403, 404, 414]).toContain(r.status);
          const body = r.json<Record<string, unknown>>();
          if (r.status === 400) {
            expect(typeof body.message).toBe('string');
            expect(body.code === 'SLUICE_ERR_PARAM' || body.code === 'SLUICE_ERR_CURSOR_INVALID').toBe(true);
          }
        }),
        { numRuns: 300 },
      );
    } finally {
      c.close();
    }
    await stillServing();
  }, 120_000);
});

describe('fuzzed stream input', () => {
  const message = fc.oneof(
    fc.json().map((s) => ({ text: s })),
    fc.jsonValue().map((v) => ({ text: JSON.stringify({ type: 'subscribe', slu_ids: v }) })),
    fc.jsonValue().map((v) => ({ text: JSON.stringify({ type: fc.sample(fc.constantFrom('subscribe', 'unsubscribe', 'ping', 'Subscribe', ''), 1)[0], all: v, id: v }) })),
    fc.array(fc.integer({ min: -5, max: 3_000_000_000 }), { maxLength: 20 }).map((ids) => ({ text: JSON.stringify({ type: 'subscribe', slu_ids: ids }) })),
    fc.integer({ min: 1, max: 200 }).map((d) => ({ text: '['.repeat(d * 20) + ']'.repeat(d * 20) })), // deep nesting
    fc.string({ unit: 'binary', maxLength: 300 }).map((s) => ({ text: s })),
    fc.uint8Array({ maxLength: 300 }).map((b) => ({ binary: Buffer.from(b) })),
    fc.constant({ text: 'x'.repeat(5000) }), // over WS_MAX_PAYLOAD_BYTES
  );

  it('every message gets an answer frame or a documented close code; the gateway keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 5 }), async (msgs) => {
        const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1' });
        try {
          await c.next('subscribed', 0);
          for (const m of msgs) {
            if (c.closeCode !== undefined) break;
            const before = c.frames.length;
            if ('binary' in m) c.ws.send(m.binary, { binary: true });
            else c.ws.send(m.text);
            await c.until(() => c.frames.length > before || c.closeCode !== undefined, 'an answer to a fuzzed message', 5000);
          }
          if (c.closeCode !== undefined) {
            expect(DOCUMENTED_CLOSES.has(c.closeCode)).toBe(true);
            expect(c.closeReason.length).toBeGreaterThan(0);
          }
          for (const f of c.frames.slice(1)) expect(['error', 'subscribed', 'unsubscribed', 'pong', 'readings', 'progress']).toContain(f.type);
        } finally {
          await c.close();
        }
      }),
      { numRuns: 120 },
    );
    // Still serving: a fresh client receives a new reading.
    const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1' });
    await c.next('subscribed', 0);
    await insertReadings(db.pool, [{ slu_id: 1, v1: 99 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 99), 'a reading after the fuzzing');
    await c.close();
    await stillServing();
    expect(WebSocket.OPEN).toBe(1);
  }, 180_000);
});
