// npm run bench:stream — the live stream against its raw limits and its peer, measured in one run on this machine:
//  (a) a bare pg client's LISTEN: notifications received per second, and NOTIFY -> receive latency;
//  (b) a bare ws broadcast of pre-serialised readings over the same mTLS to the same number of clients;
//  (p) the peer architecture (bench/lib/peer-gateway.mjs: per-row NOTIFY of the row as JSON, one LISTEN, each
//      notification straight to the sockets of its SLU; no cursor, no resume): same clients, rate and SLUs;
//  (c) sluice end to end: commit -> client latency at a fixed rate, sustained delivery, ingest with zero loss;
//  (n) sluice with FEED_FAST_PATH=false: every reading waits for the feed's read (before issue 12's fast path);
//  (f) sluice with FEED_CONNECTION=pool: the feed's read on the shared pool with an unnamed statement (before)
//      against its own connection and a prepared statement (after);
//  (w) sluice with WORKERS=2 against 1 (`--workers N` sets the main phase's);
//  (i) sluice again with BENCH_IDLE (10,000) more clients connected to SLUs that get no readings: a batch's cost
//      must follow the readings, not the connected clients. The idle clients run in their own process
//      (bench/lib/idle-clients.mjs), so the measuring clients and the writer do not share an event loop with them.
//      It prints the load over each window (the busiest processes, anyone's: the machine is shared), and with
//      BENCH_TRACE=1 the window's worst ticks beside the gateway's and this process's event-loop delays.
// Defaults follow the issues (1,000 subscribers, 1,000 SLUs, 10,000 readings/s); override with BENCH_* variables;
// BENCH_PHASES=raw,peer,sluice,idle picks phases. `--rows 100m` (or BENCH_ROWS) runs against bench:rest's database
// of that size (var/bench-pg-<size>, seeded first if it is not yet: bench/lib/seed.ts), with its partition width;
// without it, against var/bench-pg-10m as it is.
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import WebSocket from 'ws';
import { benchCerts, startGatewayProcess } from '../src/loadtest/gateway-process.ts';
import { bucketsSince, summarise } from '../src/loadtest/scrape.ts';
import { benchDatabase, benchSize, gatewayEnv, readingStorage, widthEnv } from './lib/bench-db.ts';
import { BEFORE_BYTES_PER_READING, BEFORE_PACKED_BYTES_PER_READING, BEFORE_SOURCE } from './lib/before.ts';
import { ensureSeeded, maintain } from './lib/seed.ts';
import { fmt, printTable, summary } from './lib/stats.ts';

const SUBS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const SLUS = Number(process.env.BENCH_SLUS ?? 1000);
const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const SLU_BASE = 5_000_000; // SLU ids of this benchmark, away from bench:rest's
const IDLE = Number(process.env.BENCH_IDLE ?? 10_000);
/** BENCH_TRACE=1: print the measured window's worst ticks beside the gateway's and this process's loop delays. */
const TRACE = process.env.BENCH_TRACE === '1';
const PHASES = new Set((process.env.BENCH_PHASES ?? 'raw,peer,sluice,nofast,feedpool,workers,idle').split(','));
/** Gateway processes for the main sluice phase (`--workers N` or BENCH_WORKERS); the "workers" phase compares 1 and 2. */
const argWorkers = process.argv.indexOf('--workers');
const WORKERS = Number(argWorkers >= 0 ? process.argv[argWorkers + 1] : (process.env.BENCH_WORKERS ?? 1));

const { url, pool, embedded, size } = await benchDatabase(benchSize());
const seeded = size.explicit ? await ensureSeeded(pool, size) : undefined;
// Partitions made ahead for now and the past ones turned cold, as the gateway's maintenance does at start: the
// raw and peer phases write before any gateway runs.
await maintain(pool, size);
const storage = await readingStorage(pool);
const { ca, client, dir } = await benchCerts();
const server = { certPem: await readFile(`${dir}/server.crt`, 'utf8'), keyPem: await readFile(`${dir}/server.key`, 'utf8') };
const reading = `{"p1": "0.944000006", "p2": "0.916000009", "p3": "0.930000007", "k1": "56468.7031", "k2": "33536.7578", "k3": "40628.2188", "a1": "16.6000004", "a2": "8.5", "a3": "8.10000038", "t": "2023-03-01 08:38:08.489041", "slu_id": 5, "v1": 232, "v2": 229, "v3": 232}`;

// ---------- (a) raw LISTEN
async function rawListen() {
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  await listener.query('listen bench_raw');
  const sender = new pg.Client({ connectionString: url });
  await sender.connect();
  const lat: number[] = [];
  for (let i = 0; i < 300; i++) {
    const got = new Promise<void>((r) => listener.once('notification', () => r()));
    const t0 = performance.now();
    await sender.query(`select pg_notify('bench_raw', 'x')`);
    await got;
    lat.push(performance.now() - t0);
  }
  let received = 0;
  listener.on('notification', () => received++);
  const end = Date.now() + 3000;
  let sent = 0;
  while (Date.now() < end) {
    await sender.query(`select pg_notify('bench_raw', $1) from generate_series(1, 100)`, [String(sent)]);
    sent += 1; // identical payloads in one statement fold into one notification
  }
  await new Promise((r) => setTimeout(r, 200));
  await listener.end();
  await sender.end();
  return { latency: summary(lat), perSec: received / 3 };
}

// ---------- (b) raw broadcast over the same mTLS
function connectClients(port: number, queryOf: (i: number) => string, onFrame: (i: number, data: Buffer) => void, n = SUBS): Promise<WebSocket[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}${queryOf(i)}`, { ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'localhost' } as WebSocket.ClientOptions);
      ws.on('message', (d) => onFrame(i, d as Buffer));
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    })),
  );
}

async function rawBroadcast() {
  const perFrame = Math.max(1, Math.round(RATE / SLUS / 10)); // readings a subscriber gets per tick at RATE
  const frame = `{"type":"readings","readings":[${Array(perFrame).fill(reading).join(',')}],"cursor":"c1.x"}`;
  const w = new Worker(new URL('./lib/raw-broadcast.mjs', import.meta.url), {
    workerData: { tls: { ca: ca.certPem, cert: server.certPem, key: server.keyPem }, frame, durationMs: 5000 },
  });
  const port = await new Promise<number>((r) => w.once('message', (m: { port: number }) => r(m.port)));
  let frames = 0;
  const clients = await connectClients(port, () => '/', () => frames++);
  const t0 = Date.now();
  w.postMessage('go');
  await new Promise((r) => w.once('message', r));
  const secs = (Date.now() - t0) / 1000;
  for (const c of clients) c.terminate();
  await w.terminate();
  return { readingsPerSec: (frames * perFrame) / secs, framesPerSec: frames / secs };
}

// ---------- (c)/(p)/(i) end to end: the same clients, rate and writers against any gateway
interface Target {
  readonly port: number;
  /** Stream path and query for subscriber i (one SLU each). */
  readonly pathOf: (i: number) => string;
  /** sluice's ops port: its own stage histograms and CPU. */
  readonly opsPort?: number;
  /** Called (not awaited by the writer loop) at the start and the end of the measured window. */
  readonly onWindow?: (edge: 'start' | 'end') => Promise<void>;
}

/** CPU ticks (user + system) of every process now, by pid, with its command line: who loaded the machine. */
function processTicks(): Map<number, { ticks: number; cmd: string }> {
  const out = new Map<number, { ticks: number; cmd: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() || stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      out.set(Number(name), { ticks: Number(f[11]) + Number(f[12]), cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
/** The processes that used the most CPU between two processTicks(), % of one core over `ms` (100 ticks a second). */
function topProcesses(before: Map<number, { ticks: number; cmd: string }>, after: Map<number, { ticks: number; cmd: string }>, ms: number): string {
  const used = [...after].map(([pid, a]) => ({ pid, cmd: a.cmd, pct: ((a.ticks - (before.get(pid)?.ticks ?? 0)) * 10 * 100) / ms }));
  return used.filter((u) => u.pct >= 3).sort((x, y) => y.pct - x.pct).slice(0, 12)
    .map((u) => `${fmt(u.pct, 0)}% ${u.pid} ${u.cmd.replace(/--require \S+ --import \S+ /, '').slice(0, 70)}`).join('; ');
}

/** Busy and total CPU time of the whole machine so far, ms (every process: PostgreSQL, gateway, clients). */
function machineCpuMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t;
    busy += t - c.times.idle;
  }
  return { busy, total };
}

/** Cumulative bucket counts by upper bound (seconds) of one prom-client histogram in a /metrics text. */
function bucketsOf(text: string, name: string): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))) {
    buckets.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]));
  }
  return buckets;
}

type ProcStats = { cpuUserMs: number; cpuSystemMs: number; eventLoopDelayMaxMs: number; eventLoopDelayP99Ms: number };
/**
 * The gateway's CPU time so far (its process, or with WORKERS > 1 the sum over the workers), and its worst
 * event-loop delay since the previous /readyz (which resets it).
 */
async function gatewayStats(opsPort: number | undefined): Promise<{ cpuMs: number; loopMaxMs: number; loopP99Ms: number }> {
  if (opsPort === undefined) return { cpuMs: NaN, loopMaxMs: NaN, loopP99Ms: NaN };
  const r = await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((x) => x.json() as Promise<{ process?: ProcStats; perWorker?: Array<{ process: ProcStats }> }>);
  const procs = r.perWorker ? r.perWorker.map((w) => w.process) : r.process ? [r.process] : [];
  if (!procs.length) return { cpuMs: NaN, loopMaxMs: NaN, loopP99Ms: NaN };
  return {
    cpuMs: procs.reduce((n, p) => n + p.cpuUserMs + p.cpuSystemMs, 0),
    loopMaxMs: Math.max(...procs.map((p) => p.eventLoopDelayMaxMs)),
    loopP99Ms: Math.max(...procs.map((p) => p.eventLoopDelayP99Ms)),
  };
}
/**
 * What one /metrics read costs the gateway: its wall time, and the gateway's worst event-loop delay over it
 * (the worst of three reads, 200 ms apart; /readyz before each resets the delay histogram).
 */
async function metricsReadCost(opsPort: number): Promise<{ ms: number; loopMaxMs: number }> {
  let worst = { ms: 0, loopMaxMs: 0 };
  for (let i = 0; i < 3; i++) {
    await gatewayStats(opsPort);
    const t0 = performance.now();
    await fetch(`http://127.0.0.1:${opsPort}/metrics`).then((r) => r.text());
    const ms = performance.now() - t0;
    const { loopMaxMs } = await gatewayStats(opsPort);
    worst = { ms: Math.max(worst.ms, ms), loopMaxMs: Math.max(worst.loopMaxMs, loopMaxMs) };
    await new Promise((r) => setTimeout(r, 200));
  }
  return worst;
}
const gatewayCpuMs = async (opsPort: number | undefined) => (await gatewayStats(opsPort)).cpuMs;
/** This process's event-loop delay (the writer's and the measuring clients'), reset at each measured window. */
const benchLoop = monitorEventLoopDelay({ resolution: 5 });
benchLoop.enable();

const FAST_COUNTERS = ['sluice_readings_in_total', 'sluice_fast_path_readings_total', 'sluice_fast_path_waited_total'] as const;
/** A counter's value in a /metrics text (summed over its label sets). */
function counterOf(text: string, name: string): number {
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
}

async function endToEnd(target: Target, url: string, opts: { sustained: boolean }) {
  const commitAt = new Map<number, number>(); // v1 (batch number) -> commit time
  const tickMax = new Map<number, number>(); // BENCH_TRACE: v1 -> worst latency of its readings
  const trace: Array<{ at: number; gwLoopMax: number }> = [];
  const lags: Array<{ at: number; lag: number }> = [];
  let tracing = TRACE;
  const tracer = TRACE && target.opsPort !== undefined ? (async () => {
    while (tracing) {
      const s = await gatewayStats(target.opsPort);
      trace.push({ at: performance.now(), gwLoopMax: s.loopMaxMs });
      await new Promise((r) => setTimeout(r, 100));
    }
  })() : undefined;
  let lagPrev = performance.now();
  const lagTimer = TRACE ? setInterval(() => {
    const now = performance.now();
    if (now - lagPrev > 15) lags.push({ at: now, lag: now - lagPrev - 10 });
    lagPrev = now;
  }, 10) : undefined;
  let warmBatches = 0;
  const lat: number[] = [];
  let early = 0;
  const earlyAt = new Map<number, number[]>(); // v1 (batch number) -> delivery times before its commit was acknowledged
  let delivered = 0;
  const seen = new Set<number>();
  let dups = 0;
  const clients = await connectClients(target.port, target.pathOf, (i, data) => {
    const now = performance.now();
    const f = JSON.parse(String(data)) as { type: string; readings?: Array<{ v1: number; v2: number }> };
    if (f.type !== 'readings') return;
    for (const r of f.readings ?? []) {
      delivered++;
      const key = r.v2 * 100_000 + i; // reading id within the run x subscriber
      if (seen.has(key)) dups++;
      seen.add(key);
      if (r.v1 <= warmBatches) continue;
      const c = commitAt.get(r.v1);
      if (c !== undefined) {
        lat.push(now - c);
        if (TRACE) tickMax.set(r.v1, Math.max(tickMax.get(r.v1) ?? 0, now - c));
      } else {
        // Delivered before this process handled the writer's commit acknowledgement (it shares the event loop with
        // the clients): timed when the acknowledgement is handled, as a negative latency. Leaving these out would
        // drop the fastest deliveries, and more of them the faster the gateway.
        early++;
        const list = earlyAt.get(r.v1);
        if (list) list.push(now);
        else earlyAt.set(r.v1, [now]);
      }
    }
  });
  const writer = new pg.Pool({ connectionString: url, max: 4 });
  // Fixed rate: a statement every 10 ms with RATE/100 readings spread over the SLUs.
  const perTick = Math.max(1, Math.round(RATE / 100));
  let batch = 0;
  let readingNo = 0;
  let expected = 0;
  // The first 2 s warm up the gateway's JIT and the clients; their latencies are not counted (deliveries are).
  const warmUntil = Date.now() + 2000;
  const end = warmUntil + DURATION_MS;
  const inflight: Array<Promise<unknown>> = [];
  // The gateway's own histograms, from half a second before the end of the warm-up to the end of this run: where
  // its time goes.
  const STAGES = ['sluice_notify_to_send_seconds', 'sluice_feed_read_seconds', 'sluice_publish_seconds'] as const;
  // One /metrics read for all three (each read costs the gateway: with 11,000 clients its default process
  // metrics walk every handle and file descriptor), taken at the window's edge.
  // With the fast path's counters (readings taken in, of them from payloads, payload chunks left to the read).
  const scrape = async (): Promise<Array<Map<number, number>>> => {
    if (target.opsPort === undefined) return [];
    const text = await fetch(`http://127.0.0.1:${target.opsPort}/metrics`).then((r) => r.text(), () => '');
    return [...STAGES.map((name) => bucketsOf(text, name)), new Map(FAST_COUNTERS.map((n, i) => [i, counterOf(text, n)]))];
  };
  let atWarmEnd: Promise<Array<Map<number, number>>> | undefined;
  let scrapeMs = NaN;
  let cpuAtWarmEnd: Promise<number> | undefined;
  let deliveredAtWarmEnd = 0;
  let windowStart: Promise<void> | undefined;
  let machineAtWarmEnd = machineCpuMs();
  let benchAtWarmEnd = process.cpuUsage();
  let warmEndAt = performance.now();
  let procsAtWarmEnd = new Map<number, { ticks: number; cmd: string }>();
  while (Date.now() < end) {
    // The first edge check a second before the window, and the histograms' first read half a second before it:
    // a /metrics read costs the gateway tens of ms of event loop with 11,000 clients (see metricsCost), which
    // would otherwise hold back the first ticks of the window. The gateway's histograms so cover 10.5 s.
    if (!windowStart && Date.now() >= warmUntil - 1000) windowStart = target.onWindow?.('start') ?? Promise.resolve();
    if (!atWarmEnd && Date.now() >= warmUntil - 500) {
      const scrapeAt = performance.now();
      atWarmEnd = scrape().then((x) => ((scrapeMs = performance.now() - scrapeAt), x));
    }
    if (!cpuAtWarmEnd && Date.now() >= warmUntil) {
      cpuAtWarmEnd = gatewayCpuMs(target.opsPort);
      deliveredAtWarmEnd = delivered;
      [machineAtWarmEnd, benchAtWarmEnd, warmEndAt] = [machineCpuMs(), process.cpuUsage(), performance.now()];
      procsAtWarmEnd = processTicks();
      benchLoop.reset();
    }
    const tickStart = Date.now();
    const b = ++batch;
    const first = readingNo;
    readingNo += perTick;
    inflight.push(
      writer.query(
        `insert into slu_reading (slu_id, p1, k1, a1, v1, v2, v3) select $1 + (n % $2), 0.95, 1000, 16.6, $3, n, 230 from generate_series($4::int, $5::int) n`,
        [SLU_BASE, SLUS, b, first, first + perTick - 1],
      ).then(() => {
        const at = performance.now();
        commitAt.set(b, at);
        for (const d of earlyAt.get(b) ?? []) lat.push(d - at);
        earlyAt.delete(b);
      }),
    );
    expected += perTick * Math.max(1, Math.floor(SUBS / SLUS));
    if (tickStart < warmUntil) warmBatches = b;
    const wait = 10 - (Date.now() - tickStart);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  // What the machine did over the measured window (the writer loop's end): every core's busy share, and this
  // process's (the writer and the measuring clients) in percent of one core.
  const windowMs = performance.now() - warmEndAt;
  const [machineNow, benchCpu, gatewayNow] = [machineCpuMs(), process.cpuUsage(benchAtWarmEnd), gatewayStats(target.opsPort)];
  const topProcs = topProcesses(procsAtWarmEnd, processTicks(), windowMs);
  const benchLoopMaxMs = benchLoop.max / 1e6;
  const benchLoopP99Ms = benchLoop.percentile(99) / 1e6;
  const gatewayEnd = await gatewayNow;
  const load = {
    windowMs,
    machineBusyPct: (100 * (machineNow.busy - machineAtWarmEnd.busy)) / (machineNow.total - machineAtWarmEnd.total),
    benchCpuPct: ((benchCpu.user + benchCpu.system) / 1000 / windowMs) * 100,
    gatewayCpuPct: ((gatewayEnd.cpuMs - (await (cpuAtWarmEnd ?? Promise.resolve(NaN)))) / windowMs) * 100,
    // Event-loop delay over the window (the gateway's since the /readyz read at the window's start).
    gatewayLoopMaxMs: gatewayEnd.loopMaxMs, gatewayLoopP99Ms: gatewayEnd.loopP99Ms, benchLoopMaxMs, benchLoopP99Ms, topProcs,
  };
  await windowStart;
  await target.onWindow?.('end');
  if (TRACE) {
    tracing = false;
    await tracer;
    clearInterval(lagTimer);
    const worst = [...tickMax].sort((x, y) => y[1] - x[1]).slice(0, 15);
    const rel = (t: number) => fmt(t - warmEndAt, 0);
    console.log(`trace: worst ticks (batch: latency at commit+ms): ${worst.map(([b, ms]) => `${b}@${rel(commitAt.get(b) ?? NaN)}: ${fmt(ms, 1)}`).join(', ')}`);
    console.log(`trace: gateway loop max > 10 ms per /readyz poll (ms since window start: max): ${trace.filter((x) => x.gwLoopMax > 10 && x.at > warmEndAt).map((x) => `${rel(x.at)}: ${fmt(x.gwLoopMax, 0)}`).join(', ')}`);
    console.log(`trace: bench lag > 5 ms: ${lags.filter((x) => x.at > warmEndAt).map((x) => `${rel(x.at)}: ${fmt(x.lag, 0)}`).join(', ')}`);
    console.log(`trace: delivered before the commit acknowledgement: ${early}; the /metrics read at the window's start took ${fmt(scrapeMs, 1)} ms`);
  }
  await Promise.all(inflight);
  const settle = Date.now() + 5000;
  while (delivered < expected && Date.now() < settle) await new Promise((r) => setTimeout(r, 50));
  const cpuMs = (await gatewayCpuMs(target.opsPort)) - (await (cpuAtWarmEnd ?? Promise.resolve(NaN)));
  const [before, after] = [await (atWarmEnd ?? scrape()), await scrape()];
  const [readIn, fastRows, waited] = [0, 1, 2].map((i) => ((after[3]?.get(i) ?? NaN) - (before[3]?.get(i) ?? NaN))) as [number, number, number];
  // After the CPU and histogram reads, so that its own cost is in neither.
  const metricsCost = target.opsPort === undefined ? undefined : await metricsReadCost(target.opsPort);
  const stage = (i: number) => summarise(bucketsSince(after[i] as Map<number, number>, before[i] as Map<number, number>));
  /** Observations of stage i over 25, 50 and 100 ms: one slow read holds back every tick committed meanwhile. */
  const over = (i: number) => {
    const b = bucketsSince(after[i] as Map<number, number>, before[i] as Map<number, number>);
    const total = b.get(Number.POSITIVE_INFINITY) ?? 0;
    return [0.025, 0.05, 0.1].map((le) => total - (b.get(le) ?? total));
  };
  const rateResult = {
    latency: summary(lat), early, delivered, expected, dups, rate: (readingNo / (DURATION_MS + 2000)) * 1000,
    stages: target.opsPort === undefined ? undefined : { notifyToSend: stage(0), feedRead: stage(1), publish: stage(2), over: { notifyToSend: over(0), feedRead: over(1), publish: over(2) } },
    cpuUsPerReading: (cpuMs * 1000) / (delivered - deliveredAtWarmEnd),
    /** Readings the feed took in (payloads and reads), of them from payloads, and payload chunks left to the read. */
    fast: { readIn, fastRows, waited },
    load, metricsCost,
  };

  // Sustained delivery: the same subscribers, writers as fast as they go (one reading per SLU per statement),
  // deliveries per second until the last one arrived: comparable with the raw broadcast's rate.
  let sustained = { perSec: NaN, complete: true };
  if (opts.sustained) {
    const deliveredBefore = delivered;
    let pushed = 0;
    const s0 = performance.now();
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (performance.now() - s0 < 5000) {
        const base = 1_000_000 + pushed; // taken before the await: concurrent writers get distinct v2 ranges
        pushed += SLUS;
        await writer.query(`insert into slu_reading (slu_id, p1, k1, a1, v1, v2, v3) select $1 + n, 0.95, 1000, 16.6, 0, $3::int + n, 230 from generate_series(0, $2::int - 1) n`, [SLU_BASE, SLUS, base]);
      }
    }));
    const wantDeliveries = deliveredBefore + pushed * Math.max(1, Math.floor(SUBS / SLUS));
    let lastAt = performance.now();
    const sDeadline = Date.now() + 20_000;
    for (let seenNow = delivered; delivered < wantDeliveries && Date.now() < sDeadline; ) {
      await new Promise((r) => setTimeout(r, 20));
      if (delivered !== seenNow) {
        seenNow = delivered;
        lastAt = performance.now();
      }
    }
    sustained = { perSec: ((delivered - deliveredBefore) * 1000) / (lastAt - s0), complete: delivered >= wantDeliveries };
  }
  for (const c of clients) c.terminate();
  await writer.end();
  return { rateResult, sustained };
}

/** Ingest: bulk statements as fast as 4 writers go, one all-SLU subscriber counting. */
async function ingest(port: number, url: string) {
  const writer = new pg.Pool({ connectionString: url, max: 4 });
  let got = 0;
  const all = new WebSocket(`wss://127.0.0.1:${port}/cityxchange/stream`, { ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'localhost' } as WebSocket.ClientOptions);
  all.on('message', (d) => {
    const f = JSON.parse(String(d)) as { type: string; readings?: unknown[] };
    if (f.type === 'readings') got += f.readings?.length ?? 0;
  });
  await new Promise((r) => all.once('open', r));
  let inserted = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (Date.now() - t0 < 5000) {
      await writer.query(`insert into slu_reading (slu_id, p1, v1) select $1 + (n % $2), 0.9, 1 from generate_series(1, 2000) n`, [SLU_BASE, SLUS]);
      inserted += 2000;
    }
  }));
  const ingestSecs = (Date.now() - t0) / 1000;
  const deadline = Date.now() + 20_000;
  while (got < inserted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  all.terminate();
  await writer.end();
  return { perSec: inserted / ingestSecs, inserted, got };
}

/** Every benchmark client connects from 127.0.0.1, a thousand at once: the per-address and connection caps would refuse them. */
const BENCH_ENV = {
  ...gatewayEnv(size),
  LOG_LEVEL: 'warn', WS_MAX_CONNECTIONS_PER_PARTNER: '1000000', WS_MAX_CONNECTIONS: '1000000', MAX_CONNECTIONS: '1000000',
  MAX_PENDING_HANDSHAKES: '1000000', MAX_PENDING_HANDSHAKES_PER_ADDRESS: '1000000',
};

const sluicePath = (i: number) => `/cityxchange/stream?slu_id=${SLU_BASE + (i % SLUS)}`;

async function sluice(env: Record<string, string> = {}, opts = { sustained: true, ingest: true }) {
  const gw = await startGatewayProcess(url, dir, { ...BENCH_ENV, WORKERS: String(WORKERS), ...env }, { startTimeoutMs: 600_000 });
  try {
    if (Number(env.WORKERS ?? WORKERS) > 1) await waitReady(gw.opsPort);
    const run = await endToEnd({ port: gw.port, pathOf: sluicePath, opsPort: gw.opsPort }, url, { sustained: opts.sustained });
    return { ...run, ingest: opts.ingest ? await ingest(gw.port, url) : undefined };
  } finally {
    await gw.stop();
  }
}

/** With WORKERS > 1 the port accepts as soon as one worker listens: wait for all of them. */
async function waitReady(opsPort: number): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    if ((await fetch(`http://127.0.0.1:${opsPort}/readyz`).catch(() => undefined))?.status === 200) return;
  }
  throw new Error('the gateway workers did not become ready');
}

/** The gateway's worst event-loop delay while `during` runs (its /readyz resets the histogram on every read). */
async function worstLoopDelay<T>(opsPort: number, during: () => Promise<T>): Promise<{ result: T; maxMs: number }> {
  // One read first: it resets the histogram, so what ran before (another phase, closing the clients) is not counted here.
  await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((x) => x.arrayBuffer(), () => undefined);
  let maxMs = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const r = await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((x) => x.json() as Promise<{ process?: { eventLoopDelayMaxMs: number } }>, () => undefined);
      maxMs = Math.max(maxMs, r?.process?.eventLoopDelayMaxMs ?? 0);
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  try {
    return { result: await during(), maxMs };
  } finally {
    polling = false;
    await poll;
    const r = await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((x) => x.json() as Promise<{ process?: { eventLoopDelayMaxMs: number } }>, () => undefined);
    maxMs = Math.max(maxMs, r?.process?.eventLoopDelayMaxMs ?? 0);
  }
}

/**
 * IDLE idle clients in a child process (bench/lib/idle-clients.mjs): a separate event loop and GC heap, so the
 * measuring clients and the writer share theirs only with what they shared in the run without idle clients.
 */
class IdleClients {
  readonly child = spawn(process.execPath, [new URL('./lib/idle-clients.mjs', import.meta.url).pathname], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  private next = 0;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  private readonly reap = () => this.child.kill('SIGKILL');

  constructor() {
    process.once('exit', this.reap);
    this.child.on('message', (m: { id: number }) => {
      this.waiting.get(m.id)?.(m);
      this.waiting.delete(m.id);
    });
    this.child.once('exit', (code) => {
      for (const w of this.waiting.values()) w({ error: `idle-clients process exited (code ${code})` });
      this.waiting.clear();
    });
  }

  async ask<T>(m: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    const reply = await new Promise<Record<string, unknown>>((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ id, ...m });
    });
    if (typeof reply.error === 'string') throw new Error(reply.error);
    return reply as T;
  }

  /** Opens all IDLE clients, `batch` handshakes at a time; every one must open. */
  async connect(batch: number): Promise<void> {
    const r = await this.ask<{ open: number; failed: number }>({ type: 'connect', batch });
    if (r.failed > 0 || r.open !== IDLE) throw new Error(`idle clients: ${r.open} of ${IDLE} open, ${r.failed} failed to connect`);
  }

  status() {
    return this.ask<{ open: number; unexpectedCloses: number; frames: number; bytes: number; cpuMs: number; loopMaxMs: number; rssBytes: number }>({ type: 'status' });
  }

  async stop(): Promise<void> {
    const gone = new Promise((r) => (this.child.exitCode !== null ? r(undefined) : this.child.once('exit', r)));
    if (this.child.connected) this.child.disconnect(); // it exits on disconnect
    await gone;
    process.off('exit', this.reap);
  }
}

async function streamClients(opsPort: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((x) => x.json() as Promise<{ streamClients?: number }>);
  return r.streamClients ?? NaN;
}

/**
 * The same fixed-rate run with IDLE more clients connected (in their own process), each subscribed to 100 SLUs
 * that get no readings; then all IDLE reconnect at once (as after a gateway failure), with the gateway's worst
 * event-loop delay.
 */
async function sluiceWithIdle() {
  const gw = await startGatewayProcess(url, dir, { ...BENCH_ENV, WORKERS: '1' }, { startTimeoutMs: 600_000 });
  const idle = new IdleClients();
  try {
    await idle.ask({ type: 'init', port: gw.port, ca: ca.certPem, cert: client.certPem, key: client.keyPem, n: IDLE, sluBase: SLU_BASE + 2_000_000, slusEach: 100 });
    const t0 = Date.now();
    const first = await worstLoopDelay(gw.opsPort, () => idle.connect(500));
    const connectS = (Date.now() - t0) / 1000;
    // At both edges of the measured window: the gateway's stream clients (idle + measuring) and the idle process's
    // own count of open sockets; its frames and CPU in between (it must keep reading its sockets).
    type Edge = { gateway: number; status: Awaited<ReturnType<IdleClients['status']>> };
    const edges: Partial<Record<'start' | 'end', Edge>> = {};
    const onWindow = async (edge: 'start' | 'end') => {
      const [gateway, status] = await Promise.all([streamClients(gw.opsPort), idle.status()]);
      edges[edge] = { gateway, status };
    };
    const run = await endToEnd({ port: gw.port, pathOf: sluicePath, opsPort: gw.opsPort, onWindow }, url, { sustained: false });
    const { start, end } = edges as Record<'start' | 'end', Edge>;
    const windowMs = run.rateResult.load.windowMs;
    const during = {
      gatewayClients: [start.gateway, end.gateway], idleOpen: [start.status.open, end.status.open], unexpectedCloses: end.status.unexpectedCloses,
      framesPerSec: ((end.status.frames - start.status.frames) / windowMs) * 1000, cpuPct: ((end.status.cpuMs - start.status.cpuMs) / windowMs) * 100,
      loopMaxMs: end.status.loopMaxMs, rssMiB: end.status.rssBytes / 2 ** 20,
    };
    const allThere = [start, end].every((e) => e.gateway === IDLE + SUBS && e.status.open === IDLE) && end.status.unexpectedCloses === 0;
    // The gateway's side of 10,000 clients going away at once: measured on its own, not as part of the reconnect.
    const gone = await worstLoopDelay(gw.opsPort, async () => {
      await idle.ask({ type: 'terminate' });
      await new Promise((r) => setTimeout(r, 2000));
    });
    const t1 = Date.now();
    const again = await worstLoopDelay(gw.opsPort, () => idle.connect(2000)); // 2,000 handshakes at a time, as fast as they go
    return { ...run, during, allThere, connect: { seconds: connectS, loopMaxMs: first.maxMs }, reconnect: { seconds: (Date.now() - t1) / 1000, loopMaxMs: again.maxMs }, disconnectLoopMaxMs: gone.maxMs };
  } finally {
    await idle.stop();
    await gw.stop();
  }
}

/** The peer in its own process, with its per-row trigger installed (and sluice's statement trigger off) for this phase. */
async function peer() {
  await pool.query(`create or replace function bench_peer_notify() returns trigger language plpgsql as $$
    begin perform pg_notify('bench_peer', row_to_json(new)::text); return null; end $$`);
  await pool.query('drop trigger if exists bench_peer_notify on slu_reading');
  await pool.query('create trigger bench_peer_notify after insert on slu_reading for each row execute function bench_peer_notify()');
  await pool.query('alter table slu_reading disable trigger sluice_reading_notify');
  const child = spawn(process.execPath, [new URL('./lib/peer-gateway.mjs', import.meta.url).pathname, url, `${dir}/ca.crt`, `${dir}/server.crt`, `${dir}/server.key`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve((JSON.parse(String(d)) as { port: number }).port));
      child.once('exit', () => reject(new Error('peer gateway exited')));
    });
    return await endToEnd({ port, pathOf: (i) => `/?slu_id=${SLU_BASE + (i % SLUS)}` }, url, { sustained: true });
  } finally {
    child.kill('SIGTERM');
    process.off('exit', reap);
    await pool.query('drop trigger if exists bench_peer_notify on slu_reading');
    await pool.query('alter table slu_reading enable trigger sluice_reading_notify');
  }
}

console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model}, Node ${process.version}; ${SUBS} subscribers, ${SLUS} SLUs, ${RATE} readings/s for ${DURATION_MS / 1000} s`);
{
  const n = seeded?.rows ?? storage.rowsEstimate;
  console.log(`database: ${size.dir}${seeded ? `, seeded ${seeded.rows.toLocaleString()} readings` : ''}; slu_reading ~${storage.rowsEstimate.toLocaleString()} readings (pg_class estimate) in ${storage.partitions} partitions of ${widthEnv(size.widthS)} (${storage.withRows} holding readings); ${(storage.totalBytes / 2 ** 30).toFixed(2)} GiB, ${fmt(storage.totalBytes / Math.max(1, n), 1)} bytes per reading now${seeded ? `, ${fmt(seeded.seededBytes.total / seeded.rows, 1)} right after seeding` : ''} (before, unpartitioned: ${fmt(BEFORE_BYTES_PER_READING, 1)} as the old bench left it, ${fmt(BEFORE_PACKED_BYTES_PER_READING, 1)} with its indexes rebuilt; ${BEFORE_SOURCE})`);
  console.log(`gateway settings beyond the defaults: ${Object.entries(gatewayEnv(size)).map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
}
const a = PHASES.has('raw') ? await rawListen() : undefined;
const b = PHASES.has('raw') ? await rawBroadcast() : undefined;
const p = PHASES.has('peer') ? await peer() : undefined;
const c = PHASES.has('sluice') ? await sluice() : undefined;
const noFast = PHASES.has('nofast') ? await sluice({ FEED_FAST_PATH: 'false' }, { sustained: true, ingest: false }) : undefined;
const feedPool = PHASES.has('feedpool') ? await sluice({ FEED_CONNECTION: 'pool' }, { sustained: false, ingest: false }) : undefined;
const other = PHASES.has('workers') ? await sluice({ WORKERS: WORKERS === 1 ? '2' : '1' }, { sustained: true, ingest: true }) : undefined;
const idle = PHASES.has('idle') ? await sluiceWithIdle() : undefined;
const ratio = (x: number | undefined, y: number | undefined, digits = 2) => (x === undefined || y === undefined ? '-' : `${fmt(x / y, digits)}x`);
if (c) {
  printTable(
    ['measure', 'sluice', 'peer (per-row NOTIFY, no resume)', 'sluice / peer', 'goal', 'raw floor (same run)'],
    [
      ['commit -> client p50', `${fmt(c.rateResult.latency.p50)} ms`, p ? `${fmt(p.rateResult.latency.p50)} ms` : '-', ratio(c.rateResult.latency.p50, p?.rateResult.latency.p50), '<= 1.25x', a ? `NOTIFY -> LISTEN p50 ${fmt(a.latency.p50)} ms` : '-'],
      ['commit -> client p99', `${fmt(c.rateResult.latency.p99)} ms`, p ? `${fmt(p.rateResult.latency.p99)} ms` : '-', ratio(c.rateResult.latency.p99, p?.rateResult.latency.p99), '<= 1.25x', a ? `NOTIFY -> LISTEN p99 ${fmt(a.latency.p99)} ms` : '-'],
      [
        'sustained delivery, readings/s to the subscribers',
        `${fmt(c.sustained.perSec, 0)}${c.sustained.complete ? '' : ' (INCOMPLETE)'}`,
        p ? `${fmt(p.sustained.perSec, 0)}${p.sustained.complete ? '' : ' (INCOMPLETE)'}` : '-',
        ratio(c.sustained.perSec, p?.sustained.perSec),
        '>= 1x',
        b ? `bare ws broadcast ${fmt(b.readingsPerSec, 0)}/s (sluice ${fmt((c.sustained.perSec / b.readingsPerSec) * 100, 0)}%)` : '-',
      ],
      ['ingest with zero loss', c.ingest ? `${fmt(c.ingest.perSec, 0)} readings/s (${c.ingest.got}/${c.ingest.inserted} delivered)` : '-', '-', '-', '>= 50,000/s, loss 0', a ? `LISTEN ${fmt(a.perSec, 0)} notifications/s` : '-'],
    ],
  );
  console.log(`fixed-rate run (2 s warm-up not in the latencies): offered ${fmt(c.rateResult.rate, 0)}/s, expected ${c.rateResult.expected}, delivered ${c.rateResult.delivered}, duplicates ${c.rateResult.dups}; peer: delivered ${p?.rateResult.delivered ?? '-'} of ${p?.rateResult.expected ?? '-'}, duplicates ${p?.rateResult.dups ?? '-'}`);
  const st = c.rateResult.stages;
  if (st) console.log(`inside the gateway (its /metrics, same run): NOTIFY -> sockets p50 ${st.notifyToSend.p50Ms} / p99 ${st.notifyToSend.p99Ms} ms over ${st.notifyToSend.count} reads; of which the feed's read p50 ${st.feedRead.p50Ms} / p99 ${st.feedRead.p99Ms} ms and writing the frames to the sockets p50 ${st.publish.p50Ms} / p99 ${st.publish.p99Ms} ms (${fmt(RATE / 100, 0)} frames per read: ${fmt((st.publish.p50Ms * 1000) / (RATE / 100), 0)} µs a frame${b ? `; the bare broadcast took ${fmt(1e6 / b.framesPerSec, 0)} µs` : ''})`);
  const f = c.rateResult.fast;
  if (Number.isFinite(f.readIn)) console.log(`fast path: ${f.fastRows} of ${f.readIn} readings (${fmt((f.fastRows / Math.max(1, f.readIn)) * 100, 1)}%) went out from their NOTIFY payload; ${f.waited} payload chunks were left to the read`);
  console.log(`latency samples: ${c.rateResult.latency.n} timed from the commit acknowledgement as this process handled it; ${c.rateResult.early} of them delivered before that (counted as negative latencies; peer: ${p?.rateResult.early ?? '-'})`);
}
if (c && noFast) {
  const reads = (r: typeof c) => fmt((r.rateResult.stages?.feedRead.count ?? NaN) / (DURATION_MS / 1000), 0);
  console.log(`\nthe fast path (rows from the NOTIFY payload): before (FEED_FAST_PATH=false, every reading waits for a read) commit -> client p50 ${fmt(noFast.rateResult.latency.p50)} / p99 ${fmt(noFast.rateResult.latency.p99)} ms, sustained ${fmt(noFast.sustained.perSec, 0)}/s, ${reads(noFast)} reads/s, gateway CPU ${fmt(noFast.rateResult.cpuUsPerReading, 1)} µs a reading; after p50 ${fmt(c.rateResult.latency.p50)} / p99 ${fmt(c.rateResult.latency.p99)} ms, sustained ${fmt(c.sustained.perSec, 0)}/s, ${reads(c)} reads/s, ${fmt(c.rateResult.cpuUsPerReading, 1)} µs a reading; duplicates ${noFast.rateResult.dups} / ${c.rateResult.dups}`);
}
if (c?.rateResult.stages && feedPool?.rateResult.stages) {
  const [after, before] = [c.rateResult.stages.feedRead, feedPool.rateResult.stages.feedRead];
  console.log(`\nthe feed's read: before (FEED_CONNECTION=pool, unnamed statement) p50 ${before.p50Ms} / p99 ${before.p99Ms} ms over ${before.count} reads; after (its own connection, prepared, planned per call) p50 ${after.p50Ms} / p99 ${after.p99Ms} ms over ${after.count} reads; commit -> client p50 ${fmt(feedPool.rateResult.latency.p50)} -> ${fmt(c.rateResult.latency.p50)} ms`);
}
if (c && other) {
  const [one, two] = WORKERS === 1 ? [c, other] : [other, c];
  console.log('');
  printTable(
    ['same run', 'WORKERS=1', 'WORKERS=2', '2 / 1'],
    [
      ['commit -> client p50', `${fmt(one.rateResult.latency.p50)} ms`, `${fmt(two.rateResult.latency.p50)} ms`, ratio(two.rateResult.latency.p50, one.rateResult.latency.p50)],
      ['commit -> client p99', `${fmt(one.rateResult.latency.p99)} ms`, `${fmt(two.rateResult.latency.p99)} ms`, ratio(two.rateResult.latency.p99, one.rateResult.latency.p99)],
      ['sustained delivery, readings/s', fmt(one.sustained.perSec, 0), fmt(two.sustained.perSec, 0), ratio(two.sustained.perSec, one.sustained.perSec)],
      ['ingest with zero loss, readings/s', one.ingest ? `${fmt(one.ingest.perSec, 0)} (${one.ingest.got}/${one.ingest.inserted})` : '-', two.ingest ? `${fmt(two.ingest.perSec, 0)} (${two.ingest.got}/${two.ingest.inserted})` : '-', ratio(two.ingest?.perSec, one.ingest?.perSec)],
      ['gateway CPU per delivered reading (all processes)', `${fmt(one.rateResult.cpuUsPerReading, 1)} µs`, `${fmt(two.rateResult.cpuUsPerReading, 1)} µs`, ratio(two.rateResult.cpuUsPerReading, one.rateResult.cpuUsPerReading)],
      ['feed reads (database queries) per second', fmt((one.rateResult.stages?.feedRead.count ?? NaN) / (DURATION_MS / 1000), 0), fmt((two.rateResult.stages?.feedRead.count ?? NaN) / (DURATION_MS / 1000), 0), ratio(two.rateResult.stages?.feedRead.count, one.rateResult.stages?.feedRead.count)],
    ],
  );
  console.log(`machine: ${os.availableParallelism()} cores shared by PostgreSQL, the writers, the gateway and ${SUBS} clients`);
}
if (c && idle) {
  console.log('');
  printTable(
    ['fixed rate, 1,000 active subscribers', `alone`, `+ ${IDLE} idle clients`, 'ratio', 'goal'],
    [
      ['commit -> client p50', `${fmt(c.rateResult.latency.p50)} ms`, `${fmt(idle.rateResult.latency.p50)} ms`, ratio(idle.rateResult.latency.p50, c.rateResult.latency.p50), '<= 1.2x'],
      ['commit -> client p99', `${fmt(c.rateResult.latency.p99)} ms`, `${fmt(idle.rateResult.latency.p99)} ms`, ratio(idle.rateResult.latency.p99, c.rateResult.latency.p99), '<= 1.2x'],
      ['gateway CPU per delivered reading', `${fmt(c.rateResult.cpuUsPerReading, 1)} µs`, `${fmt(idle.rateResult.cpuUsPerReading, 1)} µs`, ratio(idle.rateResult.cpuUsPerReading, c.rateResult.cpuUsPerReading), '-'],
      ...(c.rateResult.stages && idle.rateResult.stages
        ? [
            ['inside the gateway: NOTIFY -> sockets p50', `${c.rateResult.stages.notifyToSend.p50Ms} ms`, `${idle.rateResult.stages.notifyToSend.p50Ms} ms`, ratio(idle.rateResult.stages.notifyToSend.p50Ms, c.rateResult.stages.notifyToSend.p50Ms), '-'],
            ['inside the gateway: NOTIFY -> sockets p99', `${c.rateResult.stages.notifyToSend.p99Ms} ms`, `${idle.rateResult.stages.notifyToSend.p99Ms} ms`, ratio(idle.rateResult.stages.notifyToSend.p99Ms, c.rateResult.stages.notifyToSend.p99Ms), '-'],
          ]
        : []),
    ],
  );
  console.log(`idle run: delivered ${idle.rateResult.delivered} of ${idle.rateResult.expected}, duplicates ${idle.rateResult.dups}; latency samples ${idle.rateResult.latency.n}, ${idle.rateResult.early} delivered before the commit acknowledgement`);
  const overOf = (st: typeof c.rateResult.stages) => (st ? `NOTIFY -> sockets ${st.over.notifyToSend.join(' / ')}, feed read ${st.over.feedRead.join(' / ')}, publish ${st.over.publish.join(' / ')}` : '-');
  console.log(`gateway reads over 25 / 50 / 100 ms (each holds back every tick committed meanwhile): alone: ${overOf(c.rateResult.stages)}; + idle: ${overOf(idle.rateResult.stages)}`);
  const d = idle.during;
  console.log(`idle clients (own process) over the measured window: gateway stream clients ${d.gatewayClients.join(' -> ')} (want ${IDLE + SUBS}), idle sockets open ${d.idleOpen.join(' -> ')} (want ${IDLE}), closed unexpectedly ${d.unexpectedCloses}: ${idle.allThere ? 'all connected throughout' : 'NOT ALL CONNECTED'}; they read ${fmt(d.framesPerSec, 0)} frames/s, ${fmt(d.cpuPct, 1)}% of a core, worst event-loop delay ${fmt(d.loopMaxMs, 1)} ms, RSS ${fmt(d.rssMiB, 0)} MiB`);
  const loadOf = (l: typeof c.rateResult.load) => `machine ${fmt(l.machineBusyPct, 0)}% busy (of ${os.availableParallelism()} cores), gateway ${fmt(l.gatewayCpuPct, 0)}% of a core (event-loop delay p99 ${fmt(l.gatewayLoopP99Ms, 1)} / max ${fmt(l.gatewayLoopMaxMs, 1)} ms), writer + measuring clients ${fmt(l.benchCpuPct, 0)}% (event-loop delay p99 ${fmt(l.benchLoopP99Ms, 1)} / max ${fmt(l.benchLoopMaxMs, 1)} ms)`;
  const mc = (x: typeof c.rateResult.metricsCost) => (x ? `${fmt(x.ms, 1)} ms (gateway event-loop delay up to ${fmt(x.loopMaxMs, 1)} ms)` : '-');
  console.log(`one /metrics read (worst of 3, after the window; the histograms' first read is taken 0.5 s before the window for this reason): alone ${mc(c.rateResult.metricsCost)}; + idle ${mc(idle.rateResult.metricsCost)}`);
  console.log(`load over the measured window: alone: ${loadOf(c.rateResult.load)}; + idle: ${loadOf(idle.rateResult.load)}, idle clients ${fmt(d.cpuPct, 0)}%`);
  console.log(`busiest processes over the window (this benchmark's and anyone else's), alone: ${c.rateResult.load.topProcs}`);
  console.log(`busiest processes over the window, + idle: ${idle.rateResult.load.topProcs}`);
  console.log(`${IDLE} clients x 100 SLUs: connected in batches of 500 in ${fmt(idle.connect.seconds, 1)} s (gateway's worst event-loop delay ${fmt(idle.connect.loopMaxMs, 1)} ms); reconnected 2,000 at a time in ${fmt(idle.reconnect.seconds, 1)} s (worst event-loop delay ${fmt(idle.reconnect.loopMaxMs, 1)} ms; goal <= 100 ms); all ${IDLE} going away at once before it: worst delay ${fmt(idle.disconnectLoopMaxMs, 1)} ms`);
}
await pool.end();
await embedded?.close();
