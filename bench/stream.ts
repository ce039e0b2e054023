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
//      must follow the readings, not the connected clients.
// Defaults follow the issues (1,000 subscribers, 1,000 SLUs, 10,000 readings/s); override with BENCH_* variables;
// BENCH_PHASES=raw,peer,sluice,idle picks phases. `--rows 100m` (or BENCH_ROWS) runs against bench:rest's database
// of that size (var/bench-pg-<size>, seeded first if it is not yet: bench/lib/seed.ts), with its partition width;
// without it, against var/bench-pg-10m as it is.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import WebSocket from 'ws';
import { benchCerts, startGatewayProcess } from '../src/loadtest/gateway-process.ts';
import { bucketsSince, scrapeBuckets, summarise } from '../src/loadtest/scrape.ts';
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
}

type ProcStats = { cpuUserMs: number; cpuSystemMs: number };
/** The gateway's CPU time so far: its process, or with WORKERS > 1 the sum over the workers. */
async function gatewayCpuMs(opsPort: number | undefined): Promise<number> {
  if (opsPort === undefined) return NaN;
  const r = await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((x) => x.json() as Promise<{ process?: ProcStats; perWorker?: Array<{ process: ProcStats }> }>);
  const procs = r.perWorker ? r.perWorker.map((w) => w.process) : r.process ? [r.process] : [];
  return procs.length ? procs.reduce((n, p) => n + p.cpuUserMs + p.cpuSystemMs, 0) : NaN;
}

/** The sum of counters over the gateway's /metrics (cluster-aggregated on the ops port); NaN without one. */
async function counters(opsPort: number | undefined, names: readonly string[]): Promise<number[]> {
  if (opsPort === undefined) return names.map(() => NaN);
  const text = await fetch(`http://127.0.0.1:${opsPort}/metrics`).then((r) => r.text(), () => '');
  return names.map((n) => [...text.matchAll(new RegExp(`^${n}(?:\\{[^}]*\\})? (\\S+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0));
}
const FAST_COUNTERS = ['sluice_readings_in_total', 'sluice_fast_path_readings_total', 'sluice_fast_path_waited_total'] as const;

async function endToEnd(target: Target, url: string, opts: { sustained: boolean }) {
  const commitAt = new Map<number, number>(); // v1 (batch number) -> commit time
  let warmBatches = 0;
  const lat: number[] = [];
  let early = 0;
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
      if (c !== undefined) lat.push(now - c);
      else {
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
  const earlyAt = new Map<number, number[]>(); // v1 (batch number) -> delivery times before its commit was acknowledged
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
  // The gateway's own histograms, from the end of the warm-up to the end of this run: where its time goes.
  const STAGES = ['sluice_notify_to_send_seconds', 'sluice_feed_read_seconds', 'sluice_publish_seconds'] as const;
  const scrape = () => (target.opsPort === undefined ? Promise.resolve([]) : Promise.all(STAGES.map((m) => scrapeBuckets([target.opsPort as number], m))));
  let atWarmEnd: Promise<Array<Map<number, number>>> | undefined;
  let cpuAtWarmEnd: Promise<number> | undefined;
  let fastAtWarmEnd: Promise<number[]> | undefined;
  let deliveredAtWarmEnd = 0;
  while (Date.now() < end) {
    if (!atWarmEnd && Date.now() >= warmUntil) {
      atWarmEnd = scrape();
      cpuAtWarmEnd = gatewayCpuMs(target.opsPort);
      fastAtWarmEnd = counters(target.opsPort, FAST_COUNTERS);
      deliveredAtWarmEnd = delivered;
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
  await Promise.all(inflight);
  const settle = Date.now() + 5000;
  while (delivered < expected && Date.now() < settle) await new Promise((r) => setTimeout(r, 50));
  const cpuMs = (await gatewayCpuMs(target.opsPort)) - (await (cpuAtWarmEnd ?? Promise.resolve(NaN)));
  const [before, after] = [await (atWarmEnd ?? scrape()), await scrape()];
  const fastNow = await counters(target.opsPort, FAST_COUNTERS);
  const fastThen = await (fastAtWarmEnd ?? Promise.resolve(fastNow));
  const [readIn, fastRows, waited] = fastNow.map((v, i) => v - (fastThen[i] as number)) as [number, number, number];
  const stage = (i: number) => summarise(bucketsSince(after[i] as Map<number, number>, before[i] as Map<number, number>));
  const rateResult = {
    latency: summary(lat), early, delivered, expected, dups, rate: (readingNo / (DURATION_MS + 2000)) * 1000,
    stages: target.opsPort === undefined ? undefined : { notifyToSend: stage(0), feedRead: stage(1), publish: stage(2) },
    cpuUsPerReading: (cpuMs * 1000) / (delivered - deliveredAtWarmEnd),
    /** Readings the feed took in (payloads and reads), of them from payloads, and payload chunks left to the read. */
    fast: { readIn, fastRows, waited },
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
 * The same fixed-rate run with IDLE more clients connected, each subscribed to 100 SLUs that get no readings;
 * then all IDLE reconnect at once (as after a gateway failure), with the gateway's worst event-loop delay.
 */
async function sluiceWithIdle() {
  const gw = await startGatewayProcess(url, dir, { ...BENCH_ENV, WORKERS: '1' }, { startTimeoutMs: 600_000 });
  let idle: WebSocket[] = [];
  const silentSlus = (i: number) => Array.from({ length: 100 }, (_, k) => SLU_BASE + 2_000_000 + ((i * 100 + k) % 1_000_000)).join(',');
  const connectIdle = async (batch: number) => {
    const out: WebSocket[] = [];
    for (let i = 0; i < IDLE; i += batch) out.push(...(await connectClients(gw.port, (j) => `/cityxchange/stream?slu_id=${silentSlus(i + j)}`, () => undefined, Math.min(batch, IDLE - i))));
    return out;
  };
  try {
    const t0 = Date.now();
    const first = await worstLoopDelay(gw.opsPort, () => connectIdle(500));
    idle = first.result;
    const connectS = (Date.now() - t0) / 1000;
    const run = await endToEnd({ port: gw.port, pathOf: sluicePath, opsPort: gw.opsPort }, url, { sustained: false });
    // The gateway's side of 10,000 clients going away at once: measured on its own, not as part of the reconnect.
    const gone = await worstLoopDelay(gw.opsPort, async () => {
      for (const c of idle) c.terminate();
      await new Promise((r) => setTimeout(r, 2000));
    });
    const t1 = Date.now();
    const again = await worstLoopDelay(gw.opsPort, () => connectIdle(2000)); // 2,000 handshakes at a time, as fast as they go
    idle = again.result;
    return { ...run, connect: { seconds: connectS, loopMaxMs: first.maxMs }, reconnect: { seconds: (Date.now() - t1) / 1000, loopMaxMs: again.maxMs }, disconnectLoopMaxMs: gone.maxMs };
  } finally {
    for (const c of idle) c.terminate();
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
  const reads = (r: typeof c) => fmt((r.rateResult.stages?.feedRead.count ?? NaN) / ((DURATION_MS) / 1000), 0);
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
}
// Printed without the sluice phase too: BENCH_PHASES=idle measures the mass reconnect alone.
if (idle) {
  console.log(`idle run: delivered ${idle.rateResult.delivered} of ${idle.rateResult.expected}, duplicates ${idle.rateResult.dups}`);
  console.log(`${IDLE} clients x 100 SLUs: connected in batches of 500 in ${fmt(idle.connect.seconds, 1)} s (gateway's worst event-loop delay ${fmt(idle.connect.loopMaxMs, 1)} ms); reconnected 2,000 at a time in ${fmt(idle.reconnect.seconds, 1)} s (worst event-loop delay ${fmt(idle.reconnect.loopMaxMs, 1)} ms; goal <= 100 ms); all ${IDLE} going away at once before it: worst delay ${fmt(idle.disconnectLoopMaxMs, 1)} ms`);
}
await pool.end();
await embedded?.close();
