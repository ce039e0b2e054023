// bench:stream's idle clients, in their own process: real mTLS WebSocket clients, each subscribed to SLUs that get
// no readings. They live here and not in the benchmark process so that their TLS work, frames and GC do not share
// an event loop (or a heap) with the measuring clients and the writer whose commit acknowledgements time the
// latency: the benchmark then measures the gateway, not itself. They keep reading their sockets (progress frames,
// pings answered by ws), so the gateway never sees them as slow consumers.
// Plain JavaScript, started with `node` and driven over the IPC channel (bench/stream.ts, IdleClients):
//   {id, type: 'init', port, ca, cert, key, n, sluBase, slusEach}    -> {id}
//   {id, type: 'connect', batch}   opens the n clients, `batch` handshakes at a time -> {id, open, failed, ms}
//   {id, type: 'terminate'}        drops them all at once (as a gateway failure would) -> {id}
//   {id, type: 'status'}           -> {id, open, unexpectedCloses, frames, bytes, cpuMs, loopMaxMs, rssBytes}
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';

let job;
let clients = [];
let terminating = false;
let open = 0;
let unexpectedCloses = 0;
let frames = 0;
let bytes = 0;
const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();

/** SLUs of idle client i: `slusEach` distinct ones far from the benchmark's active SLUs. */
const silentSlus = (i) => Array.from({ length: job.slusEach }, (_, k) => job.sluBase + ((i * job.slusEach + k) % 1_000_000)).join(',');

function connectOne(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${job.port}/cityxchange/stream?slu_id=${silentSlus(i)}`, {
      ca: job.ca, cert: job.cert, key: job.key, servername: 'localhost', perMessageDeflate: false,
    });
    let opened = false;
    ws.on('message', (d) => {
      frames++;
      bytes += d.length;
    });
    ws.once('open', () => {
      opened = true;
      open++;
      resolve(ws);
    });
    ws.on('close', () => {
      if (!opened) return resolve(undefined);
      open--;
      if (!terminating) unexpectedCloses++;
    });
    ws.on('error', () => undefined); // a failed open ends in 'close' (resolve undefined); an open one is counted there
  });
}

async function connect(batch) {
  terminating = false;
  const t0 = performance.now();
  const out = [];
  let failed = 0;
  for (let i = 0; i < job.n; i += batch) {
    const got = await Promise.all(Array.from({ length: Math.min(batch, job.n - i) }, (_, j) => connectOne(i + j)));
    for (const ws of got) ws ? out.push(ws) : failed++;
  }
  clients = out;
  return { open, failed, ms: performance.now() - t0 };
}

async function terminate() {
  terminating = true;
  for (const ws of clients) ws.terminate();
  clients = [];
  while (open > 0) await new Promise((r) => setTimeout(r, 20)); // 'close' follows terminate() on the next turns
  return {};
}

function status() {
  const cpu = process.cpuUsage();
  const out = {
    open, unexpectedCloses, frames, bytes, cpuMs: (cpu.user + cpu.system) / 1000,
    loopMaxMs: loop.count ? loop.max / 1e6 : 0, rssBytes: process.memoryUsage().rss,
  };
  loop.reset();
  return out;
}

process.on('message', async (m) => {
  let reply;
  if (m.type === 'init') {
    job = m;
    reply = {};
  } else if (m.type === 'connect') reply = await connect(m.batch);
  else if (m.type === 'terminate') reply = await terminate();
  else if (m.type === 'status') reply = status();
  else reply = { error: `unknown command ${m.type}` };
  process.send({ id: m.id, ...reply });
});
process.on('disconnect', () => process.exit(0)); // the benchmark ended (or died): never linger
