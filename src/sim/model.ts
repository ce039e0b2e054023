/**
 * A plausible three-phase metering unit: ~230 V per phase with noise, currents that follow a daily load curve,
 * power factors 0.8-1.0, energy counters that only grow (by the energy actually drawn), and now and then an
 * outage reading like the seed's: currents, power factors and most voltages zero, counters unchanged.
 */
export interface SimReading {
  readonly slu_id: number;
  /** Legacy text form, UTC: YYYY-MM-DD HH:MM:SS.ffffff */
  readonly t: string;
  readonly p1: number; readonly p2: number; readonly p3: number;
  readonly k1: number; readonly k2: number; readonly k3: number;
  readonly a1: number; readonly a2: number; readonly a3: number;
  readonly v1: number; readonly v2: number; readonly v3: number;
}

/** Physical bounds every simulated reading respects (checked by the property test). */
export const BOUNDS = { vMin: 0, vMax: 253, aMin: 0, aMax: 80, pMin: 0, pMax: 1 } as const;

/** Seeded PRNG (mulberry32): runs are reproducible from --seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Relative load over the day (0.25 at night, peaks around 08:00 and 19:00), from UTC hours. */
export function loadCurve(hour: number): number {
  const peak = (h: number, width: number) => Math.exp(-(((hour - h + 24) % 24) ** 2) / (2 * width * width)) + Math.exp(-(((h - hour + 24) % 24) ** 2) / (2 * width * width));
  return Math.min(1, 0.25 + 0.45 * peak(8, 1.5) + 0.75 * peak(19, 2));
}

/** "2026-11-24 05:31:40.123456" from epoch milliseconds plus extra microseconds (0-999). */
export function legacyTime(ms: number, micros = 0): string {
  const d = new Date(ms);
  return d.toISOString().slice(0, 19).replace('T', ' ') + '.' + String(d.getUTCMilliseconds() * 1000 + micros).padStart(6, '0');
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
/** Rounds to what a float4 column keeps, so counters compare equal after the round trip. */
const f4 = (x: number) => Math.fround(x);

export class SluModel {
  private readonly random: () => number;
  private readonly maxAmps: number;
  private k: [number, number, number];
  private lastMs: number | undefined;
  private outageLeft = 0;

  constructor(
    readonly sluId: number,
    seed: number,
    private readonly outageRate = 0.002,
  ) {
    this.random = rng(seed ^ Math.imul(sluId, 0x9e3779b1));
    this.maxAmps = 5 + this.random() * 35;
    // Kept in float64 so small increments accumulate; written as float4 (rounding is monotonic, so never decreasing).
    this.k = [this.random() * 60_000, this.random() * 40_000, this.random() * 40_000];
  }

  /** The reading at epoch `ms` (micros only make t unique within a batch). Calls must move forward in time. */
  next(ms: number, micros = 0): SimReading {
    const dtH = this.lastMs === undefined ? 0 : Math.max(0, ms - this.lastMs) / 3_600_000;
    this.lastMs = ms;
    const t = legacyTime(ms, micros);
    if (this.outageLeft === 0 && this.random() < this.outageRate) this.outageLeft = 1 + Math.floor(this.random() * 5);
    if (this.outageLeft > 0) {
      this.outageLeft--;
      // As in the seed's example: nothing drawn, one phase may still show voltage, counters keep their value.
      const v2 = this.random() < 0.5 ? 225 : 0;
      return { slu_id: this.sluId, t, p1: 0, p2: 0, p3: 0, k1: f4(this.k[0]), k2: f4(this.k[1]), k3: f4(this.k[2]), a1: 0, a2: 0, a3: 0, v1: 0, v2, v3: 0 };
    }
    const hour = (ms / 3_600_000) % 24;
    const load = loadCurve(hour);
    const v = [0, 1, 2].map(() => Math.round(clamp(230 + (this.random() - 0.5) * 12 + (this.random() - 0.5) * 4, 207, 253)));
    const a = [0, 1, 2].map(() => f4(clamp(this.maxAmps * load * (0.85 + this.random() * 0.3), 0, BOUNDS.aMax)));
    const p = [0, 1, 2].map(() => f4(0.8 + this.random() * 0.2));
    for (let i = 0; i < 3; i++) {
      // kWh drawn on this phase since the previous reading: V * I * cos(phi) * hours / 1000.
      this.k[i] = (this.k[i] as number) + ((v[i] as number) * (a[i] as number) * (p[i] as number) * dtH) / 1000;
    }
    return {
      slu_id: this.sluId, t,
      p1: p[0] as number, p2: p[1] as number, p3: p[2] as number,
      k1: f4(this.k[0]), k2: f4(this.k[1]), k3: f4(this.k[2]),
      a1: a[0] as number, a2: a[1] as number, a3: a[2] as number,
      v1: v[0] as number, v2: v[1] as number, v3: v[2] as number,
    };
  }
}
