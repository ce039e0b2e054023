import { scrapeHistogram } from './scrape.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import hdr from 'hdr-histogram-js';
import { createCa, issueCert, type KeyType } from '../tls/certificates.ts';
import { nowMs, runSimulator, type SimSummary } from '../sim/simulator.ts';
import { startGatewayProcess } from './gateway-process.ts';

export interface LoadTestOptions {
  readonly databaseUrl: string;
  readonly subscribers: number;
  readonly slus: number;
  /** Readings per second the simulator writes. */
  readonly rate: number;
  readonly durationS: number;
  /** Clients (subscribed to all SLUs) that stop reading for 3 s of every 4 s. */
  readonly slow?: number;
  /** Partner certificates the clients are spread over. */
  readonly partners?: number;
  /** Gateway processes (clients spread round-robin), all on the same database. */
  readonly gateways?: number;
  /** Client worker threads. */
  readonly workers?: number;
  /** Shares of clients subscribed to one SLU, to `manySize` SLUs, to all. */
  readonly mix?: readonly [number, number, number];
  readonly manySize?: number;
  readonly keyType?: KeyType;
  readonly sluBase?: number;
  readonly writers?: number;
  readonly batchRows?: number;
  /** How long to wait after the last insert for every client to have everything. */
  readonly drainMs?: number;
  readonly gatewayEnv?: Record<string, string>;
  readonly onProgress?: (line: string) => void;
}

export interface SecondSample {
  readonly s: number;
  readonly inserted: number;
  readonly delivered: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly gatewayRssMb: number;
  readonly gatewayCpuPct: number;
  readonly loopDelayP99Ms: number;
}

export interface ClientReport {
  readonly query: string;
  readonly slow: boolean;
  readonly partner: number;
  readonly received: number;
  readonly expected: number;
  readonly outOfOrder: number;
  readonly reconnects: number;
  readonly closes: Record<string, number>;
}

export interface LoadTestReport {
  readonly options: Omit<LoadTestOptions, 'onProgress' | 'databaseUrl'>;
  readonly startedAt: string;
  readonly machine: { cpus: number; model: string; memGiB: number; node: string };
  readonly connect: { clients: number; rampMs: number; perSecond: number; gatewayRssBeforeMb: number; gatewayRssAfterMb: number; bytesPerConnection: number };
  readonly sim: { written: number; rate: number; asked: number; statements: number };
  /** Of every client but the --slow ones (whose lateness is self-inflicted, reported apart). */
  readonly latency: { count: number; p50Ms: number; p90Ms: number; p99Ms: number; p999Ms: number; maxMs: number; slowClientsP99Ms: number };
  readonly series: SecondSample[];
  /** Highest pg_notification_queue_usage() sampled (once a second): NOTIFY backs up as it nears 1. */
  readonly notifyQueueMax: number;
  /**
   * The gateways' own share of the latency: from a commit's NOTIFY arriving to its readings handed to the sockets
   * (sluice_notify_to_send_seconds, per database read), as bucket fractions and interpolated percentiles.
   */
  readonly inGateway: { batches: number; p50Ms: number; p99Ms: number; under1ms: number; under2ms: number; under10ms: number };
  readonly clients: { total: number; complete: number; lost: number; extra: number; outOfOrder: number; reconnects: number; slowReconnects: number; closes: Record<string, number> };
  /** Zero loss, zero duplicates/reorderings. */
  readonly ok: boolean;
  readonly perClient: ClientReport[];
}

const newHist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
const ms = (us: number) => Math.round(us) / 1000;

/** A gateway's /readyz; with WORKERS > 1 its `process` is the workers' added up (event-loop delay: the worst). */
async function readyz(opsPort: number): Promise<Record<string, unknown>> {
  try {
    const res = await fetch(`http://127.0.0.1:${opsPort}/readyz`);
    const body = (await res.json()) as Record<string, unknown> & { perWorker?: Array<{ process?: ProcStats }> };
    if (!body.perWorker) return body;
    const procs = body.perWorker.map((w) => w.process ?? {});
    const sum = (k: keyof ProcStats) => procs.reduce((n, p) => n + (p[k] ?? 0), 0);
    const process: ProcStats = { rssBytes: sum('rssBytes'), cpuUserMs: sum('cpuUserMs'), cpuSystemMs: sum('cpuSystemMs'), eventLoopDelayP99Ms: Math.max(0, ...procs.map((p) => p.eventLoopDelayP99Ms ?? 0)) };
    return { ...body, process };
  } catch {
    return {};
  }
}
type ProcStats = { rssBytes?: number; cpuUserMs?: number; cpuSystemMs?: number; eventLoopDelayP99Ms?: number };

/**
 * Starts gateway process(es) on the database, opens `subscribers` real mTLS WebSocket clients in worker threads,
 * drives the simulator, and measures commit -> receive latency, delivered vs expected per client, the gateways'
 * CPU, RSS and event-loop delay, and the reconnects of slow clients.
 */
export async function runLoadTest(o: LoadTestOptions): Promise<LoadTestReport> {
  const partners = o.partners ?? 4;
  const gatewayCount = o.gateways ?? 1;
  const workerCount = Math.max(1, Math.min(o.workers ?? 2, o.subscribers));
  const mix = o.mix ?? [6, 3, 1];
  const manySize = Math.min(o.manySize ?? 10, o.slus);
  const sluBase = o.sluBase ?? 9_000_000;
  const slow = Math.min(o.slow ?? 0, o.subscribers);
  const log = o.onProgress ?? (() => undefined);

  // Throwaway PKI: one CA, a server certificate, `partners` partner certificates (grants: all, see below).
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-loadtest-'));
  const keyType = o.keyType ?? 'ecdsa';
  const ca = await createCa({ cn: 'sluice loadtest CA', keyType });
  const server = await issueCert({ ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1'], keyType });
  await writeFile(path.join(dir, 'ca.crt'), ca.certPem);
  await writeFile(path.join(dir, 'server.crt'), server.certPem);
  await writeFile(path.join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  const partnerNames = Array.from({ length: partners }, (_, i) => `loadtest-partner-${i + 1}`);
  const partnerCerts = await Promise.all(partnerNames.map((cn) => issueCert({ ca, cn, kind: 'client', keyType })));

  const env = {
    LOG_LEVEL: 'warn', WS_MAX_CONNECTIONS: '1000000', WS_MAX_CONNECTIONS_PER_PARTNER: '1000000', MAX_CONNECTIONS: '1000000',
    // Every simulated client connects from 127.0.0.1, hundreds at a time: the per-address handshake cap would refuse them.
    MAX_PENDING_HANDSHAKES: '1000000', MAX_PENDING_HANDSHAKES_PER_ADDRESS: '1000000',
    WS_HEARTBEAT_MS: '60000', ...o.gatewayEnv,
  };
  const gateways: Array<Awaited<ReturnType<typeof startGatewayProcess>>> = [];
  for (let i = 0; i < gatewayCount; i++) gateways.push(await startGatewayProcess(o.databaseUrl, dir, env, { grantAll: partnerNames }));
  const workers: Worker[] = [];
  try {
    const rss = async () => (await Promise.all(gateways.map((g) => readyz(g.opsPort)))).map((r) => ((r.process ?? {}) as ProcStats).rssBytes ?? 0);
    const rssBefore = await rss();

    // Client mix: one SLU, `manySize` SLUs, or all; the --slow ones are all-SLU clients (the most pressure).
    const shares = mix[0] + mix[1] + mix[2];
    const specs = Array.from({ length: o.subscribers }, (_, i) => {
      const kind = i < slow ? 2 : (i % shares) < mix[0] ? 0 : (i % shares) < mix[0] + mix[1] ? 1 : 2;
      const first = (i * 7919) % o.slus;
      const query =
        kind === 0 ? `slu_id=${sluBase + first}`
        : kind === 1 ? `slu_id=${Array.from({ length: manySize }, (_, k) => sluBase + ((first + k) % o.slus)).join(',')}`
        : '';
      return { query, partner: i % partners, gateway: i % gatewayCount, slow: i < slow };
    });

    log(`connecting ${o.subscribers} clients (${keyType.toUpperCase()} certificates, ${partners} partners) to ${gatewayCount} gateway(s)...`);
    const connectStart = nowMs();
    const perSecond = newHist();
    let delivered = 0;
    const reports: Array<{ hist: string; slowHist: string; clients: ClientReport[] }> = [];
    const connected = await Promise.all(
      Array.from({ length: workerCount }, (_, w) => new Promise<number>((resolve, reject) => {
        const worker = new Worker(new URL('./client-worker.mjs', import.meta.url), {
          workerData: {
            gateways: gateways.map((g) => ({ port: g.port })), ca: ca.certPem, partners: partnerCerts.map((p) => ({ cert: p.certPem, key: p.keyPem })),
            clients: specs.filter((_, i) => i % workerCount === w), sluBase, slus: o.slus,
          },
        });
        workers.push(worker);
        worker.on('message', (m: { type: string; ms?: number; hist?: string; slowHist?: string; delivered?: number; clients?: ClientReport[] }) => {
          if (m.type === 'connected') resolve(m.ms as number);
          else if (m.type === 'tick') {
            perSecond.add(hdr.decodeFromCompressedBase64(m.hist as string));
            delivered += m.delivered as number;
          } else if (m.type === 'report') reports.push({ hist: m.hist as string, slowHist: m.slowHist as string, clients: m.clients as ClientReport[] });
        });
        worker.once('error', reject);
      })),
    );
    const rampMs = nowMs() - connectStart;
    await new Promise((r) => setTimeout(r, 1000)); // let the gateways settle before measuring memory
    const rssAfter = await rss();
    const grown = rssAfter.reduce((a, b) => a + b, 0) - rssBefore.reduce((a, b) => a + b, 0);
    log(`connected in ${(rampMs / 1000).toFixed(1)} s (slowest worker ${(Math.max(...connected) / 1000).toFixed(1)} s); gateway RSS +${(grown / 2 ** 20).toFixed(0)} MiB = ${(grown / o.subscribers / 1024).toFixed(1)} KiB per connection`);

    // Commit times go to every worker in small batches (the latency of a reading is receive time - commit time).
    let commits: Array<[string, number]> = [];
    const flush = setInterval(() => {
      if (commits.length === 0) return;
      for (const w of workers) w.postMessage({ type: 'commits', commits });
      commits = [];
    }, 20);

    const series: SecondSample[] = [];
    let inserted = 0;
    let lastCpu = 0;
    let notifyQueueMax = 0;
    let second = 0;
    const sampler = setInterval(async () => {
      second++;
      const stats = (await Promise.all(gateways.map((g) => readyz(g.opsPort)))).map((r) => (r.process ?? {}) as ProcStats);
      const cpu = stats.reduce((a, s) => a + (s.cpuUserMs ?? 0) + (s.cpuSystemMs ?? 0), 0);
      const sample: SecondSample = {
        s: second,
        inserted,
        delivered,
        p50Ms: ms(perSecond.getValueAtPercentile(50)),
        p99Ms: ms(perSecond.getValueAtPercentile(99)),
        maxMs: ms(perSecond.maxValue),
        gatewayRssMb: Math.round(stats.reduce((a, s) => a + (s.rssBytes ?? 0), 0) / 2 ** 20),
        gatewayCpuPct: lastCpu ? Math.round((cpu - lastCpu) / 10) : 0,
        loopDelayP99Ms: Math.max(...stats.map((s) => s.eventLoopDelayP99Ms ?? 0)),
      };
      lastCpu = cpu;
      series.push(sample);
      notifyQueueMax = Math.max(notifyQueueMax, await notifyQueueUsage(gateways[0]?.opsPort));
      log(`${String(sample.s).padStart(4)} s  inserted ${String(sample.inserted).padStart(7)}/s  delivered ${String(sample.delivered).padStart(8)}/s  p50 ${sample.p50Ms.toFixed(2)} ms  p99 ${sample.p99Ms.toFixed(2)} ms  gateway ${sample.gatewayCpuPct}% CPU ${sample.gatewayRssMb} MiB  loop p99 ${sample.loopDelayP99Ms} ms`);
      perSecond.reset();
      delivered = 0;
      inserted = 0;
    }, 1000);

    let sim: SimSummary;
    try {
      sim = await runSimulator({
        databaseUrl: o.databaseUrl, slus: o.slus, sluBase, rate: o.rate, durationS: o.durationS,
        ...(o.writers ? { writers: o.writers } : {}), ...(o.batchRows ? { batchRows: o.batchRows } : {}),
        onCommit: (c) => {
          commits.push([c.key, c.committedAt]);
          inserted += c.rows;
        },
      });
    } finally {
      await new Promise((r) => setTimeout(r, 50));
      clearInterval(flush);
      for (const w of workers) w.postMessage({ type: 'commits', commits });
    }
    log(`simulator done: ${sim.written} readings (${Math.round(sim.rate)}/s); waiting for every client to have everything...`);
    for (const w of workers) w.postMessage({ type: 'finish', perSlu: [...sim.perSlu], drainMs: o.drainMs ?? 15_000 });
    while (reports.length < workers.length) await new Promise((r) => setTimeout(r, 50));
    clearInterval(sampler);
    const inGateway = await notifyToSend(gateways.map((g) => g.opsPort));

    const total = newHist();
    const slowTotal = newHist();
    for (const r of reports) {
      total.add(hdr.decodeFromCompressedBase64(r.hist));
      slowTotal.add(hdr.decodeFromCompressedBase64(r.slowHist));
    }
    const perClient = reports.flatMap((r) => r.clients);
    const closes: Record<string, number> = {};
    for (const c of perClient) for (const [k, v] of Object.entries(c.closes)) closes[k] = (closes[k] ?? 0) + v;
    const clients = {
      total: perClient.length,
      complete: perClient.filter((c) => c.received === c.expected && c.outOfOrder === 0).length,
      lost: perClient.reduce((a, c) => a + Math.max(0, c.expected - c.received), 0),
      extra: perClient.reduce((a, c) => a + Math.max(0, c.received - c.expected), 0),
      outOfOrder: perClient.reduce((a, c) => a + c.outOfOrder, 0),
      reconnects: perClient.reduce((a, c) => a + c.reconnects, 0),
      slowReconnects: perClient.filter((c) => c.slow).reduce((a, c) => a + c.reconnects, 0),
      closes,
    };
    const { onProgress: _p, databaseUrl: _d, ...options } = o;
    return {
      options,
      startedAt: new Date(connectStart).toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '?', memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
      connect: {
        clients: o.subscribers, rampMs: Math.round(rampMs), perSecond: Math.round(o.subscribers / (rampMs / 1000)),
        gatewayRssBeforeMb: Math.round(rssBefore.reduce((a, b) => a + b, 0) / 2 ** 20), gatewayRssAfterMb: Math.round(rssAfter.reduce((a, b) => a + b, 0) / 2 ** 20),
        bytesPerConnection: Math.round(grown / o.subscribers),
      },
      sim: { written: sim.written, rate: Math.round(sim.rate), asked: o.rate, statements: sim.statements },
      latency: {
        count: total.totalCount, p50Ms: ms(total.getValueAtPercentile(50)), p90Ms: ms(total.getValueAtPercentile(90)), p99Ms: ms(total.getValueAtPercentile(99)),
        p999Ms: ms(total.getValueAtPercentile(99.9)), maxMs: ms(total.maxValue),
        slowClientsP99Ms: ms(slowTotal.getValueAtPercentile(99)),
      },
      series,
      inGateway,
      notifyQueueMax,
      clients,
      ok: clients.lost === 0 && clients.extra === 0 && clients.outOfOrder === 0,
      perClient,
    };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await Promise.all(gateways.map((g) => g.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

/** The gateway's sluice_pg_notification_queue_usage gauge (0 when it cannot be read). */
async function notifyQueueUsage(opsPort: number | undefined): Promise<number> {
  if (opsPort === undefined) return 0;
  const text = await fetch(`http://127.0.0.1:${opsPort}/metrics`).then((r) => r.text(), () => '');
  const v = Number(/^sluice_pg_notification_queue_usage (\S+)/m.exec(text)?.[1] ?? 0);
  return Number.isFinite(v) ? v : 0;
}

/** The gateways' sluice_notify_to_send_seconds histograms, merged. */
async function notifyToSend(opsPorts: readonly number[]): Promise<LoadTestReport['inGateway']> {
  const h = await scrapeHistogram(opsPorts, 'sluice_notify_to_send_seconds');
  return { batches: h.count, p50Ms: h.p50Ms, p99Ms: h.p99Ms, under1ms: h.under(0.001), under2ms: h.under(0.002), under10ms: h.under(0.01) };
}
