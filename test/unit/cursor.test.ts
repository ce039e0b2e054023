import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, MAX_CURSOR_XIP, type Cursor } from '../../src/stream/cursor.ts';
import { covers, visibleIn, type Snapshot } from '../../src/stream/snapshot.ts';
import { asCursorText, cursorLikeText, validCursor } from '../setup/cursor-arbitraries.ts';

/** What PostgreSQL's pg_snapshot accepts (checked against a real server in cursor-fuzz.test.ts), in safe integers. */
function isPgSnapshot(s: Snapshot): boolean {
  const safe = (n: number) => Number.isSafeInteger(n) && n >= 0;
  return (
    safe(s.xmin) && safe(s.xmax) && s.xmin % 2 ** 32 !== 0 && s.xmax % 2 ** 32 !== 0 && s.xmin <= s.xmax &&
    s.xip.every((x, i) => safe(x) && x >= s.xmin && x < s.xmax && (i === 0 || x > (s.xip[i - 1] as number)))
  );
}

describe('decodeCursor', () => {
  it.each([
    ['the reviewers\' cursor (q 0:0:, which PostgreSQL refuses)', { s: '1:1:', q: '0:0:', x: 0, i: 0 }],
    ['xmin 0', { s: '0:0:' }],
    ['xmin 0 below a positive xmax', { s: '0:5:' }],
    ['xmin 2^32 (transaction id 0 of epoch 1)', { s: '4294967296:4294967297:' }],
    ['xmax 2^33 (transaction id 0 of epoch 2)', { s: '8589934591:8589934592:' }],
    ['xmax below xmin', { s: '5:3:' }],
    ['an in-progress id below xmin', { s: '3:10:2' }],
    ['an in-progress id at xmax', { s: '3:10:10' }],
    ['in-progress ids out of order', { s: '3:10:5,4' }],
    ['a duplicated in-progress id', { s: '3:10:5,5' }],
    ['leading zeros', { s: '007:8:' }],
    ['xmax beyond 2^53', { s: '1:9007199254740992:' }],
    ['xmax beyond xid8', { s: '1:18446744073709551616:' }],
    ['a trailing comma', { s: '1:5:3,' }],
    ['an extra key', { s: '1:1:', extra: 1 }],
    ['a nested snapshot', { s: { s: '1:1:' } }],
    ['too many in-progress ids', { s: `1:${MAX_CURSOR_XIP + 2}:${Array.from({ length: MAX_CURSOR_XIP + 1 }, (_, i) => i + 1).join(',')}` }],
    ['a paging cursor without x', { s: '5:10:7', q: '7:12:7,11', i: 3 }],
    ['a paging cursor with an extra key', { s: '5:10:7', q: '7:12:7,11', x: 10, i: 3, y: 1 }],
    ['q.xmax below s.xmax', { s: '5:10:', q: '5:9:', x: 6, i: 1 }],
    ['q still running what s saw committed', { s: '5:10:', q: '5:12:7', x: 10, i: 1 }],
    ['x not yet committed in q', { s: '5:10:7', q: '7:12:7,11', x: 11, i: 3 }],
    ['x already visible in s', { s: '5:10:7', q: '7:12:7,11', x: 4, i: 3 }],
    ['x still in progress in q', { s: '5:10:7', q: '7:12:7,11', x: 7, i: 3 }],
    ['x equal to q.xmax', { s: '5:10:7', q: '7:12:7,11', x: 12, i: 3 }],
    ['s equal to q (nothing in between)', { s: '5:10:', q: '5:10:', x: 0, i: 0 }],
    ['a fractional x', { s: '5:10:7', q: '7:12:7,11', x: 10.5, i: 3 }],
    ['a negative i', { s: '5:10:7', q: '7:12:7,11', x: 10, i: -1 }],
    ['a fractional i', { s: '5:10:7', q: '7:12:7,11', x: 10, i: 1.5 }],
    ['i beyond 2^53', { s: '5:10:7', q: '7:12:7,11', x: 10, i: 2 ** 53 }],
    ['i as a string', { s: '5:10:7', q: '7:12:7,11', x: 10, i: '3' }],
    ['keys in another order', { q: '7:12:7,11', s: '5:10:7', x: 10, i: 3 }],
    ['an array', ['1:1:']],
    ['null', null],
  ])('refuses %s', (_what, body) => {
    expect(decodeCursor(asCursorText(body))).toBeUndefined();
  });

  it.each([
    ['whitespace in the JSON', 'c1.' + Buffer.from('{ "s": "1:1:" }').toString('base64url')],
    ['base64 padding', asCursorText({ s: '1:1:' }) + '='],
    ['no prefix', Buffer.from('{"s":"1:1:"}').toString('base64url')],
    ['another version', 'c2.' + Buffer.from('{"s":"1:1:"}').toString('base64url')],
    ['a duplicated key', 'c1.' + Buffer.from('{"s":"5:3:","s":"1:1:"}').toString('base64url')],
    ['not base64url', 'c1.eyJzIjoiMToxOiJ9+/'],
    ['too long', 'c1.' + 'A'.repeat(20_000)],
  ])('refuses a text that is not exactly what the gateway writes: %s', (_what, text) => {
    expect(decodeCursor(text)).toBeUndefined();
  });

  it.each([
    [{ s: '1:1:' }, { kind: 'settled', s: { xmin: 1, xmax: 1, xip: [] } }],
    [{ s: '750:760:751,755' }, { kind: 'settled', s: { xmin: 750, xmax: 760, xip: [751, 755] } }],
    [{ s: '4294967295:4294967297:4294967296' }, { kind: 'settled', s: { xmin: 2 ** 32 - 1, xmax: 2 ** 32 + 1, xip: [2 ** 32] } }],
    [{ s: '5:10:7', q: '7:12:7,11', x: 10, i: 3 }, { kind: 'paging', s: { xmin: 5, xmax: 10, xip: [7] }, q: { xmin: 7, xmax: 12, xip: [7, 11] }, xid: 10, id: 3 }],
    [{ s: '5:10:7', q: '8:12:11', x: 7, i: 0 }, { kind: 'paging', s: { xmin: 5, xmax: 10, xip: [7] }, q: { xmin: 8, xmax: 12, xip: [11] }, xid: 7, id: 0 }],
  ])('accepts %j', (body, cursor) => {
    expect(decodeCursor(asCursorText(body))).toEqual(cursor);
  });

  it('accepts every cursor the gateway can write, unchanged', () => {
    fc.assert(
      fc.property(validCursor, (c) => {
        expect(decodeCursor(encodeCursor(c))).toEqual(c);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws; whatever it accepts is a valid snapshot pair and re-encodes to the same text', () => {
    let accepted = 0;
    fc.assert(
      fc.property(cursorLikeText, (text) => {
        let c: Cursor | undefined;
        expect(() => (c = decodeCursor(text))).not.toThrow();
        if (!c) return;
        accepted++;
        expect(encodeCursor(c)).toBe(text);
        if (c.kind === 'history') return expect(isPgSnapshot(c.q)).toBe(true);
        expect(isPgSnapshot(c.s)).toBe(true);
        expect(c.s.xip.length).toBeLessThanOrEqual(MAX_CURSOR_XIP);
        if (c.kind === 'paging') {
          expect(isPgSnapshot(c.q)).toBe(true);
          expect(covers(c.q, c.s)).toBe(true);
          expect(visibleIn(c.xid, c.q) && !visibleIn(c.xid, c.s)).toBe(true);
          expect(Number.isSafeInteger(c.id) && c.id >= 0).toBe(true);
        }
      }),
      { numRuns: 5000 },
    );
    // The arbitraries are meant to reach the accepting branch too, not only the refusals.
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('covers', () => {
  it('is "everything visible in a is visible in b", for b not behind a', () => {
    const small = fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 8 })).chain(([xmin, d]) =>
      fc.subarray(Array.from({ length: d }, (_, i) => xmin + i)).map((xip): Snapshot => ({ xmin, xmax: xmin + d, xip })),
    );
    fc.assert(
      fc.property(small, small, (a, b) => {
        let sees = b.xmax >= a.xmax;
        for (let x = 0; x <= Math.max(a.xmax, b.xmax); x++) if (visibleIn(x, a) && !visibleIn(x, b)) sees = false;
        expect(covers(b, a)).toBe(sees);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('history cursors (from=)', () => {
  const q = { xmin: 700, xmax: 705, xip: [701, 703] };
  it('round-trip exactly, with and without a position', () => {
    for (const c of [
      { kind: 'history', from: 1_700_000_000, q } as const,
      { kind: 'history', from: -100, q, after: { sluId: 7, t: '2024-02-29 23:59:59.123456', id: 42 } } as const,
    ]) {
      const text = encodeCursor(c);
      expect(decodeCursor(text)).toEqual(c);
    }
  });
  it('refuse what PostgreSQL or the history query could not take: impossible dates, year 0, out-of-range SLUs and times, extra keys', () => {
    const enc = (body: unknown) => `c1.${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
    const s = '700:705:701,703';
    for (const body of [
      { h: 1, q: s, a: 7, t: '2023-02-29 00:00:00.000000', i: 1 },
      { h: 1, q: s, a: 7, t: '0000-01-01 00:00:00.000000', i: 1 },
      { h: 1, q: s, a: 7, t: '2023-01-01 00:00:00', i: 1 },
      { h: 1, q: s, a: -1, t: '2023-01-01 00:00:00.000000', i: 1 },
      { h: 1, q: s, a: 2 ** 31, t: '2023-01-01 00:00:00.000000', i: 1 },
      { h: 1e15, q: s },
      { h: 1.5, q: s },
      { h: 1, q: '0:0:' },
      { h: 1, q: s, a: 7 },
      { h: 1, q: s, x: 1 },
    ]) {
      expect(decodeCursor(enc(body)), JSON.stringify(body)).toBeUndefined();
    }
  });
});
