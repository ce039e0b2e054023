// npm run bench:stream — the live stream against its raw limits, measured in one run on this machine:
//  (a) a bare pg client's LISTEN: notifications received per second, and NOTIFY -> receive latency;
//  (b) a bare ws broadcast of pre-serialised readings over the same mTLS to the same number of clients;
//  (c) sluice end to end: commit -> client latency at a fixed rate, and the highest ingest with zero loss.
// Defaults follow the issue (1,000 subscribers, 1,000 SLUs, 10,000 readings/s); override with BENCH_* variables.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import WebSocket from 'ws';
import { benchCerts, startGatewayProcess } from '../src/loadtest/gateway-process.ts';
import { bucketsSince, scrapeBuckets, summarise } from '../src/loadtest/scrape.ts';
import { benchDatabase } from './lib/bench-db.ts';
import { fmt, printTable, summary } from './lib/stats.ts';

const SUBS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const SLUS = Number(process.env.BENCH_SLUS ?? 1000);
const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const SLU_BASE = 5_000_000; // SLU ids of this benchmark, away from bench:rest's

const { url, pool, embedded } = await benchDatabase();
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
function connectClients(port: number, queryOf: (i: number) => string, onFrame: (i: number, data: Buffer) => void): Promise<WebSocket[]> {
  return Promise.all(
    Array.from({ length: SUBS }, (_, i) => new Promise<WebSocket>((resolve, reject) => {
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

// ---------- (c) sluice end to end
async function sluice() {
  const gw = await startGatewayProcess(url, dir, { LOG_LEVEL: 'warn', WS_MAX_CONNECTIONS_PER_PARTNER: '1000000' });
  const port = gw.port;
  const commitAt = new Map<number, number>(); // v1 (batch number) -> commit time
  let warmBatches = 0;
  const lat: number[] = [];
  let early = 0;
  let delivered = 0;
  const seen = new Set<number>();
  let dups = 0;
  const clients = await connectClients(port, (i) => `/cityxchange/stream?slu_id=${SLU_BASE + (i % SLUS)}`, (i, data) => {
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
      else early++; // delivered before the writer saw its commit acknowledged
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
  // The gateway's own histograms, from the end of the warm-up to the end of this run: where its time goes.
  const STAGES = ['sluice_notify_to_send_seconds', 'sluice_feed_read_seconds', 'sluice_publish_seconds'] as const;
  const scrape = () => Promise.all(STAGES.map((m) => scrapeBuckets([gw.opsPort], m)));
  let atWarmEnd: Promise<Array<Map<number, number>>> | undefined;
  while (Date.now() < end) {
    if (!atWarmEnd && Date.now() >= warmUntil) atWarmEnd = scrape();
    const tickStart = Date.now();
    const b = ++batch;
    const first = readingNo;
    readingNo += perTick;
    inflight.push(
      writer.query(
        `insert into slu_reading (slu_id, p1, k1, a1, v1, v2, v3) select $1 + (n % $2), 0.95, 1000, 16.6, $3, n, 230 from generate_series($4::int, $5::int) n`,
        [SLU_BASE, SLUS, b, first, first + perTick - 1],
      ).then(() => commitAt.set(b, performance.now())),
    );
    expected += perTick * Math.max(1, Math.floor(SUBS / SLUS));
    if (tickStart < warmUntil) warmBatches = b;
    const wait = 10 - (Date.now() - tickStart);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inflight);
  const settle = Date.now() + 5000;
  while (delivered < expected && Date.now() < settle) await new Promise((r) => setTimeout(r, 50));
  const [before, after] = [await (atWarmEnd ?? scrape()), await scrape()];
  const stage = (i: number) => summarise(bucketsSince(after[i] as Map<number, number>, before[i] as Map<number, number>));
  const rateResult = { latency: summary(lat), stages: { notifyToSend: stage(0), feedRead: stage(1), publish: stage(2) }, early, delivered, expected, dups, rate: (readingNo / (DURATION_MS + 2000)) * 1000 };

  // Sustained delivery: the same 1,000 subscribers, writers as fast as they go (one reading per SLU per
  // statement), deliveries per second until the last one arrived: comparable with the raw broadcast's rate.
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
  const sustained = { perSec: ((delivered - deliveredBefore) * 1000) / (lastAt - s0), complete: delivered >= wantDeliveries };

  // Ingest: bulk statements as fast as 4 writers go, one all-SLU subscriber counting.
  let got = 0;
  const all = new WebSocket(`wss://127.0.0.1:${port}/cityxchange/stream`, { ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'localhost' } as WebSocket.ClientOptions);
  all.on('message', (d) => {
    const f = JSON.parse(String(d)) as { type: string; readings?: unknown[] };
    if (f.type === 'readings') got += f.readings?.length ?? 0;
  });
  await new Promise((r) => all.once('open', r));
  for (const c of clients) c.terminate();
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
  await gw.stop();
  return { rateResult, sustained, ingest: { perSec: inserted / ingestSecs, inserted, got } };
}

console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model}, Node ${process.version}; ${SUBS} subscribers, ${SLUS} SLUs, ${RATE} readings/s for ${DURATION_MS / 1000} s\n`);
const a = await rawListen();
const b = await rawBroadcast();
const c = await sluice();
printTable(
  ['measure', 'sluice', 'raw limit (same run)', 'ratio', 'target'],
  [
    ['commit -> client p50', `${fmt(c.rateResult.latency.p50)} ms`, `NOTIFY -> LISTEN p50 ${fmt(a.latency.p50)} ms`, `${fmt(c.rateResult.latency.p50 / a.latency.p50, 1)}x`, '<= 2 ms'],
    ['commit -> client p99', `${fmt(c.rateResult.latency.p99)} ms`, `NOTIFY -> LISTEN p99 ${fmt(a.latency.p99)} ms`, `${fmt(c.rateResult.latency.p99 / a.latency.p99, 1)}x`, '<= 10 ms'],
    ['sustained delivery, readings/s to the subscribers', `${fmt(c.sustained.perSec, 0)}${c.sustained.complete ? '' : ' (INCOMPLETE)'}`, `bare ws broadcast ${fmt(b.readingsPerSec, 0)}/s`, `${fmt((c.sustained.perSec / b.readingsPerSec) * 100, 0)}%`, '>= 60% of raw'],
    ['ingest with zero loss', `${fmt(c.ingest.perSec, 0)} readings/s (${c.ingest.got}/${c.ingest.inserted} delivered)`, `LISTEN ${fmt(a.perSec, 0)} notifications/s`, '-', '>= 50,000/s, loss 0'],
  ],
);
console.log(`fixed-rate run (2 s warm-up not in the latencies): offered ${fmt(c.rateResult.rate, 0)}/s, expected ${c.rateResult.expected}, delivered ${c.rateResult.delivered}, duplicates ${c.rateResult.dups}`);
const st = c.rateResult.stages;
console.log(`inside the gateway (its /metrics, same run): NOTIFY -> sockets p50 ${st.notifyToSend.p50Ms} / p99 ${st.notifyToSend.p99Ms} ms over ${st.notifyToSend.count} reads; of which the feed's read p50 ${st.feedRead.p50Ms} / p99 ${st.feedRead.p99Ms} ms and writing the frames to the sockets p50 ${st.publish.p50Ms} / p99 ${st.publish.p99Ms} ms (${fmt(RATE / 100, 0)} frames per read: ${fmt((st.publish.p50Ms * 1000) / (RATE / 100), 0)} µs a frame; the bare broadcast took ${fmt(1e6 / b.framesPerSec, 0)} µs)`);
console.log(`latency samples: ${c.rateResult.latency.n} timed from the commit acknowledgement, ${c.rateResult.early} delivered before it (which would bias the figures if not 0)`);
await pool.end();
await embedded?.close();
