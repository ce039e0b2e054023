// A load-test worker thread: opens its share of WebSocket clients (real mTLS, several partners), measures
// commit -> receive latency per reading (HDR histograms, per second and in total), counts what each client got,
// checks order (t strictly increases per SLU per client: a duplicate or a reordering fails it), and lets the
// --slow clients stop reading so the gateway cuts them off (4408); they resume with their cursor.
// Plain JavaScript: worker threads cannot load TypeScript through tsx on Node 20.
import { parentPort, workerData } from 'node:worker_threads';
import hdr from 'hdr-histogram-js';
import WebSocket from 'ws';

const job = workerData; // { gateways: [{port}], ca, partners: [{cert, key}], clients: [{query, partner, gateway, slow}], sluBase, slus }
const nowMs = () => performance.timeOrigin + performance.now();
const newHist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });

const committed = new Map(); // statement key (t to the ms) -> committedAt
const pending = new Map(); // key -> receive times waiting for the commit time
let second = newHist();
const total = newHist();
// Slow clients' deliveries are late by design (they stop reading): kept apart so they do not hide everyone else's.
const slowTotal = newHist();
let deliveredThisSecond = 0;

function record(recvAt, at, slow) {
  const us = Math.max(1, Math.round((recvAt - at) * 1000));
  if (slow) return slowTotal.recordValue(us);
  second.recordValue(us);
  total.recordValue(us);
}

class Client {
  constructor(spec, index) {
    this.spec = spec;
    this.index = index;
    this.received = 0;
    this.outOfOrder = 0;
    this.reconnects = 0;
    this.closes = {};
    this.lastT = new Map();
    this.cursor = undefined;
    this.finished = false;
    this.ready = this.open();
  }

  open() {
    const { port } = job.gateways[this.spec.gateway];
    const p = job.partners[this.spec.partner];
    const q = [this.spec.query, this.cursor ? `since=${encodeURIComponent(this.cursor)}` : ''].filter(Boolean).join('&');
    const ws = new WebSocket(`wss://127.0.0.1:${port}/cityxchange/stream${q ? `?${q}` : ''}`, { ca: job.ca, cert: p.cert, key: p.key, servername: 'localhost', perMessageDeflate: false });
    this.ws = ws;
    return new Promise((resolve) => {
      let opened = false;
      ws.on('message', (data) => {
        const recvAt = nowMs();
        const f = JSON.parse(data.toString());
        if (typeof f.cursor === 'string') this.cursor = f.cursor;
        if (f.type === 'subscribed' && !opened) {
          opened = true;
          resolve();
        }
        if (f.type !== 'readings') return;
        for (const r of f.readings) {
          if (r.slu_id < job.sluBase || r.slu_id >= job.sluBase + job.slus) continue; // another writer's reading
          this.received++;
          deliveredThisSecond++;
          const last = this.lastT.get(r.slu_id);
          if (last !== undefined && r.t <= last) this.outOfOrder++;
          this.lastT.set(r.slu_id, r.t);
          const key = r.t.slice(0, 23);
          const at = committed.get(key);
          if (at !== undefined) record(recvAt, at, this.spec.slow);
          else {
            let list = pending.get(key);
            if (!list) pending.set(key, (list = []));
            list.push([recvAt, this.spec.slow]);
          }
        }
      });
      ws.on('close', (code) => {
        this.closes[code] = (this.closes[code] ?? 0) + 1;
        if (!opened) resolve();
        if (this.finished) return;
        // Like a real client: resume where it was (the cursor), after a short jittered pause.
        this.reconnects++;
        setTimeout(() => (this.ready = this.open()), 100 + Math.random() * 200);
      });
      ws.on('error', () => undefined);
      if (this.spec.slow) this.beSlow(ws);
    });
  }

  beSlow(ws) {
    // Stops reading its socket for 3 s of every 4 s: unread bytes pile up on the gateway until it cuts it off.
    const timer = setInterval(() => {
      const s = ws._socket;
      if (!s || ws.readyState !== WebSocket.OPEN) return clearInterval(timer);
      s.pause();
      setTimeout(() => s.resume(), 3000);
    }, 4000);
  }

  report(expectedOf) {
    return { query: this.spec.query, slow: this.spec.slow, partner: this.spec.partner, received: this.received, expected: expectedOf(this.spec), outOfOrder: this.outOfOrder, reconnects: this.reconnects, closes: this.closes };
  }
}

const clients = [];
const t0 = nowMs();
for (let i = 0; i < job.clients.length; i++) {
  clients.push(new Client(job.clients[i], i));
  if (i % 50 === 49) await Promise.all(clients.slice(-50).map((c) => c.ready));
}
await Promise.all(clients.map((c) => c.ready));
parentPort.postMessage({ type: 'connected', ms: nowMs() - t0 });

const tick = setInterval(() => {
  parentPort.postMessage({ type: 'tick', hist: hdr.encodeIntoCompressedBase64(second), delivered: deliveredThisSecond });
  second = newHist();
  deliveredThisSecond = 0;
  const old = nowMs() - 120_000;
  for (const [k, at] of committed) if (at < old) committed.delete(k);
}, 1000);

parentPort.on('message', async (m) => {
  if (m.type === 'commits') {
    for (const [key, at] of m.commits) {
      committed.set(key, at);
      const waiting = pending.get(key);
      if (waiting) {
        for (const [recvAt, slow] of waiting) record(recvAt, at, slow);
        pending.delete(key);
      }
    }
  } else if (m.type === 'finish') {
    // Wait until every client has what it should (or the deadline), then report.
    const perSlu = new Map(m.perSlu);
    const totalWritten = [...perSlu.values()].reduce((a, b) => a + b, 0);
    const expectedOf = (spec) => {
      const ids = new URLSearchParams(spec.query).get('slu_id');
      if (!ids) return totalWritten;
      return ids.split(',').reduce((a, id) => a + (perSlu.get(Number(id)) ?? 0), 0);
    };
    const deadline = Date.now() + m.drainMs;
    while (Date.now() < deadline && clients.some((c) => c.received < expectedOf(c.spec))) await new Promise((r) => setTimeout(r, 100));
    clearInterval(tick);
    for (const c of clients) {
      c.finished = true;
      c.ws.close();
    }
    parentPort.postMessage({ type: 'report', hist: hdr.encodeIntoCompressedBase64(total), slowHist: hdr.encodeIntoCompressedBase64(slowTotal), clients: clients.map((c) => c.report(expectedOf)), unmatched: [...pending.values()].reduce((a, l) => a + l.length, 0) });
    setTimeout(() => process.exit(0), 200);
  }
});
