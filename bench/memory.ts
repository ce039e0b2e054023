// npm run bench:memory — gateway memory per idle stream connection, and what TLS session tickets and the TLS
// version cost: N real mTLS WebSocket clients against a gateway process; RSS and JavaScript heap read from the
// gateway's /readyz before and after. Backs the per-connection figures in docs/capacity.md.
import WebSocket from 'ws';
import { benchCerts, startGatewayProcess } from '../src/loadtest/gateway-process.ts';
import { benchDatabase } from './lib/bench-db.ts';
import { printTable } from './lib/stats.ts';

const N = Number(process.env.BENCH_CONNECTIONS ?? 4000);
const { url, pool, embedded } = await benchDatabase();
const { ca, client, dir } = await benchCerts();

async function measure(env: Record<string, string>, tls12: boolean): Promise<{ rss: number; heap: number }> {
  const g = await startGatewayProcess(url, dir, { LOG_LEVEL: 'warn', WS_MAX_CONNECTIONS_PER_PARTNER: '1000000', MAX_PENDING_HANDSHAKES_PER_ADDRESS: '1000000', ...env });
  const stats = async () => ((await (await fetch(`http://127.0.0.1:${g.opsPort}/readyz`)).json()) as { process: { rssBytes: number; heapUsedBytes: number } }).process;
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const before = await stats();
    const sockets: WebSocket[] = [];
    for (let i = 0; i < N; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, N - i) }, (_, j) => new Promise<void>((resolve, reject) => {
        const opts = { ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'localhost', ...(tls12 ? { maxVersion: 'TLSv1.2' } : {}) };
        const ws = new WebSocket(`wss://127.0.0.1:${g.port}/cityxchange/stream?slu_id=${i + j}`, opts as WebSocket.ClientOptions);
        ws.once('message', () => resolve()).once('error', reject);
        sockets.push(ws);
      })));
    }
    await new Promise((r) => setTimeout(r, 3000)); // idle: what a connection costs while nothing happens
    const after = await stats();
    for (const s of sockets) s.terminate();
    return { rss: (after.rssBytes - before.rssBytes) / N / 1024, heap: (after.heapUsedBytes - before.heapUsedBytes) / N / 1024 };
  } finally {
    await g.stop();
  }
}

const rows: string[][] = [];
for (const [name, env, tls12] of [
  ['default (TLS 1.3, session tickets off)', {}, false],
  ['TLS 1.3, session tickets on', { TLS_SESSION_TICKETS: 'true' }, false],
  ['TLS 1.2 client, tickets off', {}, true],
  ['default + MALLOC_ARENA_MAX=2', { MALLOC_ARENA_MAX: '2' }, false],
] as const) {
  const m = await measure(env, tls12);
  rows.push([name, `${m.rss.toFixed(1)} KiB`, `${m.heap.toFixed(1)} KiB`, '<= 50 KB (48.8 KiB)']);
}
console.log(`\n${N} idle mTLS stream connections, one gateway process\n`);
printTable(['configuration', 'RSS per connection', 'JS heap per connection', 'target'], rows);
await pool.end();
await embedded?.close();
