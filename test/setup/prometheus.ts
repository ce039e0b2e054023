/** Reading the gateway's /metrics (the Prometheus text format) in tests. */

/** The ops port's /metrics text. */
export async function scrape(opsPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${opsPort}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/**
 * Every metric family the text declares (its `# TYPE` lines): a family is there even before it has a sample
 * (a counter by code nobody was refused with yet), which is what a dashboard or an alert rule depends on.
 */
export function metricFamilies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] as string, m[2] as string);
  return out;
}

/**
 * The value of one sample: `name` with exactly `labels` (label order as written does not matter); undefined
 * when there is no such sample.
 */
export function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1] as string, l[2] as string] as const).sort(([a], [b]) => a.localeCompare(b));
    if (have.length === want.length && have.every(([k, v], i) => want[i]?.[0] === k && want[i]?.[1] === v)) return Number(m[3]);
  }
  return undefined;
}
