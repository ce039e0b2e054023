import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { aheadAdd, aheadHas, aheadOf, decodeAhead, encodeAhead, MAX_AHEAD_RANGES, MAX_AHEAD_XIDS } from '../../src/stream/ahead.ts';
import { decodeCursor, encodeCursor } from '../../src/stream/cursor.ts';

const S = { xmin: 100, xmax: 110, xip: [103] };

describe('rows delivered ahead of a snapshot', () => {
  it('holds exactly the spans added, in canonical ranges, within its bounds', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 110, max: 113 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 4 })), { maxLength: 60 }), (adds) => {
        const a = new Map<number, Array<[number, number]>>();
        const model = new Set<string>();
        for (const [xid, lo, len] of adds) {
          const span = Array.from({ length: len + 1 }, (_, k) => `${xid},${lo + k}`);
          const before = span.filter((k) => model.has(k)).length;
          const r = aheadAdd(a, xid, lo, lo + len);
          if (r === 'added') for (const k of span) model.add(k);
          // 'seen' only when all of it is there; 'overlap' only when part of it is; 'added' only when none of it was.
          expect(r === 'seen' ? before === span.length : r === 'overlap' ? before > 0 && before < span.length : r === 'added' ? before === 0 : true).toBe(true);
        }
        for (let xid = 110; xid <= 113; xid++) for (let id = 0; id <= 46; id++) expect(aheadHas(a, xid, id)).toBe(model.has(`${xid},${id}`));
        expect([...a.values()].reduce((n, r) => n + r.length, 0)).toBeLessThanOrEqual(MAX_AHEAD_RANGES);
        expect(a.size).toBeLessThanOrEqual(MAX_AHEAD_XIDS);
        for (const ranges of a.values()) for (let i = 1; i < ranges.length; i++) expect((ranges[i] as [number, number])[0]).toBeGreaterThan((ranges[i - 1] as [number, number])[1] + 1);
        // What a gateway writes, a gateway reads back: the same rows, the same text.
        if (a.size > 0) {
          const text = encodeCursor({ kind: 'settled', s: S, ahead: a });
          const back = decodeCursor(text);
          expect(back && encodeCursor(back)).toBe(text);
          expect(decodeAhead(encodeAhead(a), S)).toEqual(new Map([...a].sort((x, y) => x[0] - y[0])));
        }
      }),
    );
  });

  it('drops what a later snapshot sees', () => {
    const a = new Map<number, Array<[number, number]>>([[103, [[1, 2]]], [111, [[5, 5]]]]);
    expect([...(aheadOf(a, { xmin: 104, xmax: 111, xip: [] }) ?? new Map()).keys()]).toEqual([111]);
    expect(aheadOf(a, { xmin: 112, xmax: 112, xip: [] })).toBeUndefined();
  });

  it('refuses what no gateway writes', () => {
    for (const f of [
      [], [[110]], [[110, 1]], [[110, 2, 1]], [[110, 1, 2, 3, 4]], [[110, 1, 2, 2, 3]], [[111, 1, 1], [110, 1, 1]],
      [[105, 1, 1]], [[103.5, 1, 1]], [[-1, 1, 1]], [['110', 1, 1]], [[110, 1, 1], [110, 3, 3]],
      Array.from({ length: MAX_AHEAD_XIDS + 1 }, (_, i) => [110 + i, 1, 1]),
      [[110, ...Array.from({ length: MAX_AHEAD_RANGES + 1 }, (_, i) => [i * 3, i * 3]).flat()]],
    ]) {
      expect(decodeAhead(f, S), JSON.stringify(f)).toBeUndefined();
    }
    expect(decodeAhead([[103, 1, 1], [110, 1, 3, 5, 5]], S)).toBeDefined();
  });
});
