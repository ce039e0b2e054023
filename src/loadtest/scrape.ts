/** A histogram read from the gateways' /metrics (ops port), merged across processes. */
export interface ScrapedHistogram {
  /** Observations. */
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Share of observations at or under `le` seconds (a bucket bound). */
  under(le: number): number;
}

/**
 * Reads and merges one prom-client histogram (seconds) from every gateway's ops port. Quantiles interpolate
 * linearly inside the bucket that holds them, as Prometheus' histogram_quantile does, so they are as fine as
 * the buckets.
 */
export async function scrapeHistogram(opsPorts: readonly number[], name: string): Promise<ScrapedHistogram> {
  return summarise(await scrapeBuckets(opsPorts, name));
}

/** Cumulative bucket counts by upper bound (seconds), summed over the gateways. */
export async function scrapeBuckets(opsPorts: readonly number[], name: string): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  const pattern = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm');
  for (const port of opsPorts) {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
    for (const m of text.matchAll(pattern)) {
      const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2]));
    }
  }
  return buckets;
}

/** What was observed between two scrapes of the same histogram. */
export function bucketsSince(now: Map<number, number>, before: Map<number, number>): Map<number, number> {
  return new Map([...now].map(([le, c]) => [le, c - (before.get(le) ?? 0)]));
}

export function summarise(buckets: Map<number, number>): ScrapedHistogram {
  const les = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Number.POSITIVE_INFINITY) ?? 0;
  const quantile = (q: number) => {
    let prevLe = 0;
    let prevCount = 0;
    for (const le of les) {
      const c = buckets.get(le) ?? 0;
      if (c >= q * total) return Number.isFinite(le) ? (prevLe + ((le - prevLe) * (q * total - prevCount)) / Math.max(1, c - prevCount)) * 1000 : prevLe * 1000;
      prevLe = le;
      prevCount = c;
    }
    return 0;
  };
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return { count: total, p50Ms: r2(quantile(0.5)), p99Ms: r2(quantile(0.99)), under: (le) => r2(total ? (buckets.get(le) ?? 0) / total : 0) };
}
