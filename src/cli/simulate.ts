// `npm run simulate -- --slus N --rate R --duration S [--writers W] [--batch B] [--slu-base B] [--seed X]`
// Inserts realistic SLU readings into DATABASE_URL (or the embedded database of `npm start`).
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/config.ts';
import { runSimulator } from '../sim/simulator.ts';
import { openDatabase } from './database.ts';

const USAGE = `usage: npm run simulate -- --slus N --rate R --duration S [options]
  --slus N        SLUs to simulate (default 1000)
  --rate R        readings per second in total (default 1000)
  --duration S    seconds (default 10)
  --writers W     concurrent writer connections (default 4)
  --batch B       rows per INSERT statement, 1-999; 1 = single-row inserts (default 200)
  --slu-base B    first SLU id (default 1)
  --seed X        random seed, for reproducible runs (default 1)`;

function positiveInt(name: string, v: string | undefined, def: number, max = 10_000_000): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

try {
  const { values } = parseArgs({
    options: {
      slus: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, writers: { type: 'string' },
      batch: { type: 'string' }, 'slu-base': { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const slus = positiveInt('slus', values.slus, 1000);
  const rate = positiveInt('rate', values.rate, 1000);
  const durationS = positiveInt('duration', values.duration, 10, 86_400 * 30);
  const writers = positiveInt('writers', values.writers, 4, 64);
  const batchRows = positiveInt('batch', values.batch, 200, 999);
  const sluBase = values['slu-base'] === undefined ? 1 : Number(values['slu-base']);
  if (!Number.isInteger(sluBase) || sluBase < 0 || sluBase + slus > 2_147_483_647) throw new Error('--slu-base must be a non-negative integer');
  const seed = positiveInt('seed', values.seed, 1, 2 ** 31);

  const db = await openDatabase(loadConfig(), 1);
  console.log(`simulating ${slus} SLUs (ids ${sluBase}..${sluBase + slus - 1}) at ${rate} readings/s for ${durationS} s: ${writers} writers, ${batchRows} rows per INSERT`);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  try {
    const s = await runSimulator({
      databaseUrl: db.url, slus, sluBase, rate, durationS, writers, batchRows, seed, signal: abort.signal,
      onProgress: (p) => process.stderr.write(`\r  ${p.elapsedS.toFixed(0).padStart(4)} s  ${Math.round(p.rate).toLocaleString().padStart(8)} readings/s  ${p.written.toLocaleString().padStart(11)} written  backlog ${p.backlog}   `),
    });
    process.stderr.write('\n');
    console.log(`done: ${s.written.toLocaleString()} readings in ${s.durationS.toFixed(1)} s = ${Math.round(s.rate).toLocaleString()} readings/s (asked ${rate.toLocaleString()}), ${s.statements.toLocaleString()} INSERT statements, ${s.perSlu.size} SLUs`);
  } finally {
    await db.close();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `simulate: ${(err as Error).message}`);
  process.exit(1);
}
