// npm run bench:rest — the partner REST API over mTLS with keep-alive, against the same queries run directly
// on PostgreSQL in the same run. Seeds SLUS x PER_SLU readings once (default 10,000 x 1,000 = 10 million) into
// a persistent embedded database under var/bench-pg (or DATABASE_URL).
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { LATEST_SQL } from '../src/db/latest.ts';
import { benchCerts, startGatewayProcess } from '../src/loadtest/gateway-process.ts';
import { READING_COLUMNS } from '../src/format/reading.ts';
import { benchDatabase } from './lib/bench-db.ts';
import { fmt, printTable, summary } from './lib/stats.ts';
import { formatPacked, formatReading, latestArrayJson, wrapperJson, type ReadingRow } from '../src/format/reading.ts';
import { RANGE_QUERY } from '../src/db/range.ts';
import { ROWS_QUERY } from '../src/db/rows.ts';

const SLUS = Number(process.env.BENCH_SLUS ?? 10_000);
const PER_SLU = Number(process.env.BENCH_PER_SLU ?? 1_000);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);

const { url, pool, embedded } = await benchDatabase();
const have = Number((await pool.query(`select coalesce((select n from sluice_bench_seed), 0) as n`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);
if (have !== SLUS * PER_SLU) {
  console.log(`seeding ${SLUS} SLUs x ${PER_SLU} readings = ${(SLUS * PER_SLU).toLocaleString()} rows (once; kept in var/bench-pg)...`);
  const t0 = Date.now();
  await pool.query('truncate slu_reading');
  await pool.query('drop index if exists slu_reading_slu_t_idx');
  const chunk = Math.max(1, Math.floor(1_000_000 / SLUS));
  for (let n = 0; n < PER_SLU; n += chunk) {
    // One reading every 15 s per SLU, like the field units, ending now.
    await pool.query(
      `insert into slu_reading (slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)
       select s, (now() at time zone 'utc') - make_interval(secs => ($3::int - n) * 15 + s * 0.001),
              0.8 + random() * 0.2, 0.8 + random() * 0.2, 0.8 + random() * 0.2,
              n * 1.37 + s, n * 1.21 + s, n * 1.11 + s, random() * 50, random() * 50, random() * 50,
              225 + (random() * 10)::int, 225 + (random() * 10)::int, 225 + (random() * 10)::int
       from generate_series(1, $1::int) s, generate_series($2::int, least($2::int + ${chunk} - 1, $3::int - 1)) n`,
      [SLUS, n, PER_SLU],
    );
    process.stdout.write(`\r  ${Math.min(PER_SLU, n + chunk) * SLUS} rows`);
  }
  console.log('\n  building indexes...');
  const { loadMigrations } = await import('../src/db/migrate.ts');
  for (const m of await loadMigrations()) await pool.query(m.sql); // re-creates the dropped indexes (idempotent)
  await pool.query('vacuum analyze slu_reading');
  await pool.query('create table if not exists sluice_bench_seed (n bigint)');
  await pool.query('truncate sluice_bench_seed');
  await pool.query('insert into sluice_bench_seed values ($1)', [SLUS * PER_SLU]);
  console.log(`  seeded in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
// /time must return its full 10,000 rows (the cap), so 10 "heavy" SLUs get 20,000 readings each, interleaved
// with each other in the heap like real concurrent SLUs (one reading every 15 s each, ending now).
const HEAVY_BASE = 1_000_000;
const HEAVY = 10;
const HEAVY_PER = 20_000;
const heavyHave = Number((await pool.query(`select count(*) from slu_reading where slu_id > $1 and slu_id <= $2`, [HEAVY_BASE, HEAVY_BASE + HEAVY])).rows[0].count);
if (heavyHave !== HEAVY * HEAVY_PER) {
  console.log(`seeding ${HEAVY} heavy SLUs x ${HEAVY_PER.toLocaleString()} readings (once)...`);
  await pool.query(`delete from slu_reading where slu_id > $1 and slu_id <= $2`, [HEAVY_BASE, HEAVY_BASE + HEAVY]);
  await pool.query(
    `insert into slu_reading (slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)
     select $1::int + s, (now() at time zone 'utc') - make_interval(secs => ($3::int - n) * 15 + s * 0.001),
            0.8 + random() * 0.2, 0.8 + random() * 0.2, 0.8 + random() * 0.2, n * 1.37, n * 1.21, n * 1.11,
            random() * 50, random() * 50, random() * 50, 225 + (random() * 10)::int, 230, 231
     from generate_series(1, $3::int) n, generate_series(1, $2::int) s`,
    [HEAVY_BASE, HEAVY, HEAVY_PER],
  );
  await pool.query('vacuum analyze slu_reading');
}
// Other benchmarks and load tests write their own SLUs into the same embedded database; /latest must measure
// exactly the seeded set. Only on the benchmark's own embedded database, never on a DATABASE_URL.
if (embedded) {
  const gone = await pool.query(`delete from slu_reading where not (slu_id between 1 and $1 or slu_id between $2 and $3)`, [SLUS, HEAVY_BASE + 1, HEAVY_BASE + HEAVY]);
  if (gone.rowCount) {
    console.log(`removed ${gone.rowCount} readings of other benchmarks' SLUs`);
    await pool.query('vacuum analyze slu_reading');
  }
}
const rowCount = SLUS * PER_SLU + HEAVY * HEAVY_PER;

// --- certificates and the gateway in its own process (so the load generator does not share its event loop)
const { ca, client, dir } = await benchCerts();
const gateway = await startGatewayProcess(url, dir, { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', PG_POOL_MAX: '8' });
const port = gateway.port;

async function load(paths: string[], concurrency: number, durationMs: number, workers = 1, count?: number) {
  const results = await Promise.all(
    Array.from({ length: workers }, () =>
      new Promise<{ latencies: number[]; errors: number; bytes: number }>((resolve, reject) => {
        const w = new Worker(new URL('./lib/load-worker.mjs', import.meta.url), {
          workerData: { port, ca: ca.certPem, cert: client.certPem, key: client.keyPem, paths, concurrency, durationMs, count },
        });
        w.once('message', resolve).once('error', reject);
      }),
    ),
  );
  const latencies = results.flatMap((r) => r.latencies);
  return { ...summary(latencies), errors: results.reduce((a, r) => a + r.errors, 0), rps: latencies.length / (durationMs / 1000), bytes: results.reduce((a, r) => a + r.bytes, 0) };
}

async function direct(sql: string, params: (i: number) => unknown[], concurrency: number, durationMs: number, format?: (rows: ReadingRow[], i: number) => string) {
  const lat: number[] = [];
  const end = Date.now() + durationMs;
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const n = i++;
        const t0 = performance.now();
        const r = await pool.query<ReadingRow>({ text: sql, values: params(n), rowMode: 'array' });
        if (format) format(r.rows, n);
        lat.push(performance.now() - t0);
      }
    }),
  );
  return { ...summary(lat), rps: lat.length / (durationMs / 1000) };
}

const sluAt = (i: number) => 1 + ((i * 7919) % SLUS);
const rowsPaths = Array.from({ length: 1000 }, (_, i) => `/cityxchange/rows?slu_id=${sluAt(i)}&cnt=100`);
const nowS = Math.floor(Date.now() / 1000);
// /time over a heavy SLU's whole history: the 10,000-row cap (and the truncation headers) every time. Each
// request starts at a different point of the range so they are not all the same (cached) readings.
const heavyAt = (i: number) => HEAVY_BASE + 1 + (i % HEAVY);
const timeEnd = (i: number) => nowS + 3600 - (i % 10) * 15 * 1000;
const timePaths = Array.from({ length: 100 }, (_, i) => `/cityxchange/time?slu_id=${heavyAt(i)}&begin=0&end=${timeEnd(i)}`);

console.log(`\nmachine: ${os.cpus().length} x ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${(await pool.query('show server_version')).rows[0].server_version}`);
console.log(`data: ${SLUS.toLocaleString()} SLUs, ${rowCount.toLocaleString()} readings; each figure ${DURATION_MS / 1000} s\n`);

// warm-up (plans, caches, TLS sessions)
await load(['/cityxchange/latest'], 1, 2000);
await load(rowsPaths, 8, 2000);

const latest = await load(['/cityxchange/latest'], 1, DURATION_MS);
const latestDb = await direct(LATEST_SQL, () => [], 1, DURATION_MS);
// The legacy way: whole rows for every SLU, formatted on every request (what sluice avoids with its cache).
const LEGACY_LATEST = `with recursive s(sid) as ((select slu_id from slu_reading order by slu_id limit 1) union all
  select (select r.slu_id from slu_reading r where r.slu_id > s.sid order by r.slu_id limit 1) from s where s.sid is not null)
  select ${READING_COLUMNS} from s cross join lateral (select * from slu_reading l where l.slu_id = s.sid order by l.t desc, l.id desc limit 1) r`;
const latestDbFmt = await direct(LEGACY_LATEST, () => [], 1, DURATION_MS, (rows) => latestArrayJson(rows.map(formatReading)));
const rows = await load(rowsPaths, 16, DURATION_MS, 1);
const rowsDb = await direct(ROWS_QUERY.keysSql, (i) => [sluAt(i), 100], 16, DURATION_MS);
// The heavy SLUs' index pages were evicted by the phases above (shared_buffers is 128 MB, the database 4.5 GB):
// the first request for each reads them from disk. Measured on their own, then a warm-up like the other
// endpoints', then the steady state, where ~1 request in 9 still misses the reading cache and runs cold.
const firstTouch = await load(timePaths.slice(0, HEAVY), 1, 0, 1, HEAVY);
await load(timePaths, 1, 2000);
const time = await load(timePaths, 1, DURATION_MS);
// The gateway's reading cache (READING_CACHE_SIZE) is smaller than the heavy SLUs' 200,000 readings, so most
// /time requests above ran cold: compare with the same full query (values from the covering index) + format.
const timeDb = await direct(RANGE_QUERY.fullSql, (i) => [heavyAt(i), 0, timeEnd(i), 10_001], 1, DURATION_MS, (r, i) => wrapperJson(r.map((x) => formatPacked((x as unknown as [string])[0]).formatted), heavyAt(i)));
const LEGACY_ROWS = `select ${READING_COLUMNS} from slu_reading r where r.slu_id = $1 order by r.t desc, r.id desc limit $2`;
const rowsLegacy = await direct(LEGACY_ROWS, (i) => [sluAt(i), 100], 16, DURATION_MS, (r, i) => wrapperJson(r.map(formatReading), sluAt(i)));
const timeRows = 10_000;

printTable(
  ['endpoint', 'sluice over mTLS', 'same query on PostgreSQL', 'ratio', 'target'],
  [
    [`/latest (${SLUS.toLocaleString()} objects)`, `p50 ${fmt(latest.p50)} ms, p99 ${fmt(latest.p99)} ms`, `ids query p50 ${fmt(latestDb.p50)} / p99 ${fmt(latestDb.p99)} ms; full rows + format p99 ${fmt(latestDbFmt.p99)} ms`, `${fmt(latest.p99 / latestDb.p99, 1)}x`, 'p99 <= 20 ms'],
    ['/rows?cnt=100, 16 connections', `${fmt(rows.rps, 0)} req/s (p99 ${fmt(rows.p99)} ms)`, `ids query ${fmt(rowsDb.rps, 0)} q/s; full rows + format ${fmt(rowsLegacy.rps, 0)} q/s`, `${fmt((rows.rps / rowsDb.rps) * 100, 0)}%`, '>= 5,000 req/s'],
    [`/time (${timeRows.toLocaleString()} rows)`, `p50 ${fmt(time.p50)} ms, p99 ${fmt(time.p99)} ms`, `full query + format p50 ${fmt(timeDb.p50)} / p99 ${fmt(timeDb.p99)} ms`, `${fmt(time.p99 / timeDb.p99, 1)}x`, 'p99 <= 100 ms'],
    [`/time, first touch of ${HEAVY} SLUs' pages`, `p50 ${fmt(firstTouch.p50)} ms, max ${fmt(firstTouch.max)} ms`, 'pages read from disk', '', '(no target)'],
  ],
);
console.log(`errors: latest ${latest.errors}, rows ${rows.errors}, time ${time.errors}; /latest body ${(latest.bytes / Math.max(1, latest.n) / 1024).toFixed(0)} KiB`);

await gateway.stop();
await pool.end();
await embedded?.close();
