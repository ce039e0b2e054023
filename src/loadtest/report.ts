import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { LoadTestReport } from './loadtest.ts';

const require = createRequire(import.meta.url);

/** The summary table the console prints (markdown, so it can be pasted into docs as is). */
export function summaryTable(r: LoadTestReport): string {
  const rows: Array<[string, string]> = [
    ['clients', `${r.connect.clients} (${r.clients.complete} complete)`],
    ['connect ramp', `${(r.connect.rampMs / 1000).toFixed(1)} s (${r.connect.perSecond}/s)`],
    ['gateway memory per connection', `${(r.connect.bytesPerConnection / 1024).toFixed(1)} KiB (RSS ${r.connect.gatewayRssBeforeMb} -> ${r.connect.gatewayRssAfterMb} MiB)`],
    ['readings written', `${r.sim.written} (${r.sim.rate}/s, asked ${r.sim.asked}/s)`],
    ['deliveries measured', String(r.latency.count)],
    ['commit -> client p50 / p90 / p99 (all but slow clients)', `${r.latency.p50Ms} / ${r.latency.p90Ms} / ${r.latency.p99Ms} ms`],
    ['commit -> client p99.9 / max', `${r.latency.p999Ms} / ${r.latency.maxMs} ms`],
    ['in the gateway: NOTIFY -> sockets p50 / p99 (per read)', `${r.inGateway.p50Ms} / ${r.inGateway.p99Ms} ms (${Math.round(r.inGateway.under2ms * 100)}% of ${r.inGateway.batches} reads under 2 ms)`],
    ['NOTIFY queue (highest pg_notification_queue_usage sampled)', String(r.notifyQueueMax)],
    ['lost / extra / out of order', `${r.clients.lost} / ${r.clients.extra} / ${r.clients.outOfOrder}`],
    ['slow clients: p99 (self-inflicted)', `${r.latency.slowClientsP99Ms} ms`],
    ['reconnects (of slow clients)', `${r.clients.reconnects} (${r.clients.slowReconnects})`],
    ['close codes seen', Object.entries(r.clients.closes).map(([k, v]) => `${k} x${v}`).join(', ') || '-'],
    ['gateway CPU (mean of seconds)', `${Math.round(avg(r.series.map((s) => s.gatewayCpuPct)))}%`],
    ['gateway event-loop delay p99 (worst second)', `${Math.max(0, ...r.series.map((s) => s.loopDelayP99Ms))} ms`],
    ['verdict', r.ok ? 'OK: zero loss, zero duplicates' : 'FAILED: see lost / extra / out of order'],
  ];
  return ['| measure | value |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

function avg(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

/** A self-contained HTML page: uPlot and the data inlined, nothing loaded from the network. */
export async function htmlReport(r: LoadTestReport): Promise<string> {
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const [js, css] = await Promise.all([readFile(path.join(uplotDir, 'uPlot.iife.min.js'), 'utf8'), readFile(path.join(uplotDir, 'uPlot.min.css'), 'utf8')]);
  const table = summaryTable(r).split('\n').slice(2).map((l) => l.split(' | ').map((c) => c.replace(/^\| |\|$/g, '').trim()));
  const data = JSON.stringify(r.series).replace(/</g, '\\u003c');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sluice load test ${escapeHtml(r.startedAt)}</title>
<style>${css}
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse}td{border-bottom:1px solid #ddd;padding:4px 12px}
.ok{color:#070}.bad{color:#b00}h2{margin-top:32px}</style></head><body>
<h1>sluice load test</h1>
<p>${escapeHtml(r.startedAt)}: ${r.connect.clients} mTLS WebSocket clients, ${escapeHtml(String(r.options.slus))} SLUs, ${r.sim.asked} readings/s asked for ${escapeHtml(String(r.options.durationS))} s,
${escapeHtml(String(r.options.gateways ?? 1))} gateway process(es). Machine: ${r.machine.cpus} x ${escapeHtml(r.machine.model)}, ${r.machine.memGiB} GiB, Node ${escapeHtml(r.machine.node)}.</p>
<p class="${r.ok ? 'ok' : 'bad'}"><b>${r.ok ? 'Zero loss, zero duplicates.' : 'Loss or duplicates: see the table.'}</b></p>
<table>${table.map(([k, v]) => `<tr><td>${escapeHtml(k ?? '')}</td><td>${escapeHtml(v ?? '')}</td></tr>`).join('')}</table>
<h2>Commit &rarr; client latency per second (ms)</h2><div id="lat"></div>
<h2>Throughput per second</h2><div id="tput"></div>
<h2>Gateway</h2><div id="gw"></div>
<script>${js}</script>
<script>
const d = ${data};
const x = d.map(s => s.s);
const w = Math.min(1050, innerWidth - 48);
const opts = (title, series) => ({ width: w, height: 280, title, scales: { x: { time: false } }, axes: [{ label: 's' }, {}], series: [{ label: 's' }, ...series] });
new uPlot(opts('latency', [{ label: 'p50 ms', stroke: '#1f77b4' }, { label: 'p99 ms', stroke: '#d62728' }, { label: 'max ms', stroke: '#aaa' }]), [x, d.map(s => s.p50Ms), d.map(s => s.p99Ms), d.map(s => s.maxMs)], document.getElementById('lat'));
new uPlot(opts('readings', [{ label: 'inserted/s', stroke: '#2ca02c' }, { label: 'delivered/s', stroke: '#9467bd' }]), [x, d.map(s => s.inserted), d.map(s => s.delivered)], document.getElementById('tput'));
new uPlot(opts('gateway', [{ label: 'CPU %', stroke: '#ff7f0e' }, { label: 'RSS MiB', stroke: '#17becf' }, { label: 'event-loop p99 ms', stroke: '#8c564b' }]), [x, d.map(s => s.gatewayCpuPct), d.map(s => s.gatewayRssMb), d.map(s => s.loopDelayP99Ms)], document.getElementById('gw'));
</script></body></html>
`;
}

/** Writes <dir>/loadtest-<stamp>.json and .html; returns their paths. */
export async function writeReport(r: LoadTestReport, dir: string): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, '-');
  const json = path.join(dir, `loadtest-${stamp}.json`);
  const html = path.join(dir, `loadtest-${stamp}.html`);
  await writeFile(json, JSON.stringify(r, null, 2));
  await writeFile(html, await htmlReport(r));
  return { json, html };
}
