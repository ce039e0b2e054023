// `npm run loadtest -- --subscribers C --slus N --rate R --duration S [--slow K] [...]`: see README "Load test".
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/config.ts';
import { runLoadTest } from '../loadtest/loadtest.ts';
import { summaryTable, writeReport } from '../loadtest/report.ts';
import { openDatabase } from './database.ts';

const USAGE = `usage: npm run loadtest -- --subscribers C --slus N --rate R --duration S [options]
  --subscribers C   WebSocket clients (default 100)
  --slus N          simulated SLUs (default 1000), ids from --slu-base (default 9000000)
  --rate R          readings/s written by the simulator (default 1000)
  --duration S      seconds of writing (default 10)
  --slow K          clients that read slowly (cut off with 4408, they resume with their cursor) (default 0)
  --partners P      partner certificates the clients are spread over (default 4)
  --gateways G      gateways on the same database, each on its own port, clients spread over them (default 1)
  --gateway-workers W  worker processes per gateway (its WORKERS setting: one port, node:cluster) (default 1)
  --workers W       client worker threads (default 2)
  --mix a:b:c       shares of clients on one SLU : ten SLUs : all SLUs (default 6:3:1)
  --rsa             RSA-2048 certificates instead of ECDSA P-256 (to compare handshake cost)
  --out DIR         where the JSON and HTML reports go (default var/loadtest)
Starts its own gateway process(es) on DATABASE_URL, or on the embedded database of \`npm start\`.`;

function int(name: string, v: string | undefined, def: number, min = 1, max = 10_000_000): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

try {
  const { values } = parseArgs({
    options: {
      subscribers: { type: 'string' }, slus: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, slow: { type: 'string' },
      partners: { type: 'string' }, gateways: { type: 'string' }, workers: { type: 'string' }, mix: { type: 'string' }, rsa: { type: 'boolean' },
      out: { type: 'string' }, 'slu-base': { type: 'string' }, 'gateway-workers': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const mix = (values.mix ?? '6:3:1').split(':').map(Number);
  if (mix.length !== 3 || mix.some((x) => !Number.isInteger(x) || x < 0) || mix.every((x) => x === 0)) throw new Error('--mix must be three non-negative integers a:b:c, e.g. 6:3:1');
  const db = await openDatabase(loadConfig(), 1);
  try {
    const report = await runLoadTest({
      databaseUrl: db.url,
      subscribers: int('subscribers', values.subscribers, 100),
      slus: int('slus', values.slus, 1000),
      rate: int('rate', values.rate, 1000),
      durationS: int('duration', values.duration, 10, 1, 86_400),
      slow: int('slow', values.slow, 0, 0),
      partners: int('partners', values.partners, 4),
      gateways: int('gateways', values.gateways, 1, 1, 16),
      workers: int('workers', values.workers, 2, 1, 64),
      mix: mix as [number, number, number],
      keyType: values.rsa ? 'rsa' : 'ecdsa',
      sluBase: int('slu-base', values['slu-base'], 9_000_000, 0, 2_000_000_000),
      gatewayEnv: { WORKERS: String(int('gateway-workers', values['gateway-workers'], 1, 1, 256)) },
      onProgress: (line) => console.error(line),
    });
    console.log(`\n${summaryTable(report)}\n`);
    const files = await writeReport(report, values.out ?? 'var/loadtest');
    console.log(`report: ${files.html}\n        ${files.json}`);
    process.exitCode = report.ok ? 0 : 1;
  } finally {
    await db.close();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `loadtest: ${(err as Error).stack ?? err}`);
  process.exit(1);
}
