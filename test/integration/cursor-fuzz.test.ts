import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.ts';
import { formatSnapshot, parseSnapshot } from '../../src/stream/snapshot.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { cursorLikeText, snapshotLikeText, validSnapshot } from '../setup/cursor-arbitraries.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Resume cursors come from partners: whatever a `since=` holds, the outcome is a normal stream or an error
// frame and close 4400 (invalid) / 4410 (expired), never 1011 and never a query error in PostgreSQL.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let acme: CertAndKey;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }));
  await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }]);
  // The fuzz resumes from cursors of the database's first few hundred transactions; the replay window (sql/007)
  // would refuse them all as older than the xid clock's first mark. Let the clock start at transaction 1, so
  // those cursors are inside the window and really replay (the window has tests of its own).
  await db.pool.query(`delete from sluice_xid_clock; insert into sluice_xid_clock (xid, at) values ('1', now())`);
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('snapshots', () => {
  it('whatever parseSnapshot accepts, PostgreSQL accepts as pg_snapshot and prints the same', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(snapshotLikeText, validSnapshot.map(formatSnapshot)), async (text) => {
        const s = parseSnapshot(text);
        if (!s) return;
        accepted++;
        const r = await db.pool.query<{ t: string }>('select $1::pg_snapshot::text as t', [text]);
        expect(r.rows[0]?.t).toBe(text);
      }),
      { numRuns: 600 },
    );
    expect(accepted).toBeGreaterThan(50);
  });
});

describe('fuzzed resume cursors', () => {
  it('give a normal stream or an error frame and 4400/4410, never 1011; the gateway keeps serving', async () => {
    const outcomes = { streamed: 0, refused: 0 };
    let marker = 1_000;
    await fc.assert(
      fc.asyncProperty(cursorLikeText, async (cursor) => {
        const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: `slu_id=1&since=${encodeURIComponent(cursor)}` });
        try {
          // A reading committed now reaches a resumed client only after its replay, so seeing it means the
          // whole resume (decode, replay queries, switch to live) went through.
          const v1 = ++marker;
          await c.opened;
          await insertReadings(db.pool, [{ slu_id: 1, v1 }]);
          await c.until(() => c.closeCode !== undefined || c.readings.some((r) => r.v1 === v1), 'the live reading or a close', 15_000);
          if (c.closeCode === undefined) {
            outcomes.streamed++;
            expect(c.frames[0]).toMatchObject({ type: 'subscribed' });
            return;
          }
          outcomes.refused++;
          const err = c.frames.find((f) => f.type === 'error');
          expect({ close: c.closeCode, reason: c.closeReason, error: err?.code }).toMatchObject({
            close: expect.toSatisfy((code: number) => code === 4400 || code === 4410),
            reason: expect.stringMatching(/^SLUICE_ERR_CURSOR_(INVALID|EXPIRED)/),
            error: expect.stringMatching(/^SLUICE_ERR_CURSOR_(INVALID|EXPIRED)$/),
          });
        } finally {
          await c.close();
        }
      }),
      { numRuns: 500 },
    );
    // Both outcomes were exercised: cursors that resume and cursors that are refused.
    expect(outcomes.streamed).toBeGreaterThan(10);
    expect(outcomes.refused).toBeGreaterThan(10);
    const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: acme, query: 'slu_id=1' });
    await c.next('subscribed', 0);
    await insertReadings(db.pool, [{ slu_id: 1, v1: 99 }]);
    await c.until(() => c.readings.some((r) => r.v1 === 99), 'a reading after the fuzzing');
    await c.close();
  }, 240_000);
});
