import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BOUNDS, legacyTime, loadCurve, SluModel } from '../../src/sim/model.ts';

describe('simulated readings', () => {
  it('stay within physical ranges, and every SLU\'s energy counters never decrease', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2_000_000_000 }), // slu id
        fc.integer({ min: 1, max: 2 ** 31 - 1 }), // seed
        fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }), // start (epoch ms)
        fc.array(fc.integer({ min: 0, max: 3_600_000 }), { minLength: 1, maxLength: 200 }), // gaps between readings
        fc.constantFrom(0, 0.002, 0.3), // outage rate
        (sluId, seed, start, gaps, outageRate) => {
          const m = new SluModel(sluId, seed, outageRate);
          let ms = start;
          let prev: ReturnType<SluModel['next']> | undefined;
          for (const gap of gaps) {
            ms += gap;
            const r = m.next(ms);
            expect(r.slu_id).toBe(sluId);
            for (const v of [r.v1, r.v2, r.v3]) expect(Number.isInteger(v) && v >= BOUNDS.vMin && v <= BOUNDS.vMax).toBe(true);
            for (const a of [r.a1, r.a2, r.a3]) expect(a >= BOUNDS.aMin && a <= BOUNDS.aMax).toBe(true);
            for (const p of [r.p1, r.p2, r.p3]) expect(p === 0 || (p >= 0.8 && p <= BOUNDS.pMax)).toBe(true);
            // Drawing current means a voltage and a power factor; an outage draws nothing.
            if (r.a1 > 0) expect(r.v1 > 200 && r.p1 >= 0.8).toBe(true);
            for (const k of [r.k1, r.k2, r.k3]) expect(k >= 0 && Number.isFinite(k) && Math.fround(k) === k).toBe(true);
            if (prev) {
              expect(r.k1).toBeGreaterThanOrEqual(prev.k1);
              expect(r.k2).toBeGreaterThanOrEqual(prev.k2);
              expect(r.k3).toBeGreaterThanOrEqual(prev.k3);
              expect(r.t >= prev.t).toBe(true);
            }
            expect(r.t).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
            prev = r;
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('follows a daily load curve: evening peak above the night', () => {
    expect(loadCurve(19)).toBeGreaterThan(0.9);
    expect(loadCurve(3)).toBeLessThan(0.35);
    for (let h = 0; h < 24; h += 0.25) expect(loadCurve(h) >= 0.25 && loadCurve(h) <= 1).toBe(true);
  });

  it('writes t in the legacy form, microseconds included', () => {
    expect(legacyTime(Date.UTC(2023, 2, 1, 8, 38, 8, 489), 41)).toBe('2023-03-01 08:38:08.489041');
  });

  it('produces outage readings like the seed\'s: nothing drawn, counters kept', () => {
    const m = new SluModel(5, 7, 1); // always in outage
    const a = m.next(1_700_000_000_000);
    const b = m.next(1_700_000_015_000);
    expect([a.a1, a.a2, a.a3, a.p1, a.p2, a.p3, a.v1, a.v3]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect([b.k1, b.k2, b.k3]).toEqual([a.k1, a.k2, a.k3]);
  });
});
