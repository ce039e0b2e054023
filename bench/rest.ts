// npm run bench:rest [-- --rows 10m|100m|N] — the partner REST API over mTLS with keep-alive, against the same
// queries run directly on PostgreSQL in the same run. Seeds the size's history once (bench/lib/seed.ts: 10m =
// 10,000 SLUs x 1,000 readings in daily partitions, 100m = 10,000 x 10,000 in hourly partitions, plus 10 heavy
// SLUs x 20,000 for /time) into a persistent embedded database under var/bench-pg-<size> (or DATABASE_URL;
// BENCH_ROWS works as --rows).
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { LATEST_SQL } from '../src/db/latest.ts';
import { benchCerts, startGatewayProcess } from '../src/loadtest/gateway-process.ts';
import { READING_COLUMNS } from '../src/format/reading.ts';
import { benchDatabase, benchSize, gatewayEnv, readingStorage, widthEnv } from './lib/bench-db.ts';
import { BEFORE_BYTES_PER_READING, BEFORE_HEAP_BYTES_PER_READING, BEFORE_INDEX_BYTES_PER_READING, BEFORE_PACKED_BYTES_PER_READING, BEFORE_PACKED_INDEX_BYTES_PER_READING, BEFORE_PACKED_PKEY_BYTES_PER_READING, BEFORE_SOURCE } from './lib/before.ts';
import { ensureSeeded, HEAVY, HEAVY_BASE, maintain } from './lib/seed.ts';
import { fmt, printTable, summary } from './lib/stats.ts';
import { formatPacked, formatReading, latestArrayJson, wrapperJson, type ReadingRow } from '../src/format/reading.ts';
import { RANGE_QUERY } from '../src/db/range.ts';
import { ROWS_QUERY, ROWS_RECENT_QUERY } from '../src/db/rows.ts';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);

const { url, pool, embedded, size } = await benchDatabase(benchSize());
const SLUS = size.slus;
const seeded = await ensureSeeded(pool, size);
// Other benchmarks and load tests write their own SLUs into the same embedded database; /latest must measure
// exactly the seeded set. Only on the benchmark's own embedded database, never on a DATABASE_URL. Written as
// ranges of slu_id so it is an index range scan per partition, not a scan of every reading.
if (embedded) {
  const gone = await pool.query(`delete from slu_reading where slu_id < 1 or (slu_id > $1 and slu_id <= $2) or slu_id > $3`, [SLUS, HEAVY_BASE, HEAVY_BASE + HEAVY]);
  if (gone.rowCount) {
    console.log(`removed ${gone.rowCount} readings of other benchmarks' SLUs`);
    await pool.query('vacuum analyze slu_reading');
  }
}
// Partitions made ahead for now and the past ones turned cold, as the gateway's maintenance does at start.
await maintain(pool, size);
const rowCount = seeded.rows;
const storage = await readingStorage(pool);

// --- certificates and the gateway in its own process (so the load generator does not share its event loop)
const { ca, client, dir } = await benchCerts();
const startedAt = performance.now();
const gwEnv = gatewayEnv(size);
const gateway = await startGatewayProcess(url, dir, { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', PG_POOL_MAX: '8', ...gwEnv }, { startTimeoutMs: 600_000 });
// It listens once its latest-reading store is filled (LATEST_SQL over every SLU and partition): the same wait as
// after every DELETE/UPDATE/TRUNCATE and every retention drop, while /latest requests wait for the rebuild.
const gatewayStartS = (performance.now() - startedAt) / 1000;
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
// The history ends when it was seeded (not now): the /time ranges are placed on it, so they stay ten different
// pages however long after the seeding the benchmark runs.
const nowS = seeded.endS;
// /time over a heavy SLU's whole history: the 10,000-row cap (and the truncation headers) every time. Each
// request starts at a different point of the range so they are not all the same (cached) readings.
const heavyAt = (i: number) => HEAVY_BASE + 1 + (i % HEAVY);
const timeEnd = (i: number) => nowS + 3600 - (i % 10) * 15 * 1000;
const timePaths = Array.from({ length: 100 }, (_, i) => `/cityxchange/time?slu_id=${heavyAt(i)}&begin=0&end=${timeEnd(i)}`);

console.log(`\nmachine: ${os.cpus().length} x ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${(await pool.query('show server_version')).rows[0].server_version}`);
console.log(`data: ${SLUS.toLocaleString()} SLUs, ${rowCount.toLocaleString()} readings in ${storage.partitions} partitions of ${widthEnv(size.widthS)} (${storage.withRows} holding readings, plus the default one); each figure ${DURATION_MS / 1000} s`);
{
  // /rows asks the recent partitions first (src/partner-port.ts: now - 2 x PARTITION_WIDTH); a seeded history
  // ends when it was seeded, so long after that the window holds none of it and every /rows asks the whole table.
  const ageS = Date.now() / 1000 - seeded.endS;
  console.log(`the history ends ${(ageS / 3600).toFixed(1)} h before this run${ageS > 2 * size.widthS ? ` (more than 2 partition widths: /rows's recent window holds none of it, so every /rows asks the whole table; remove ${size.dir} to seed afresh)` : ' (inside /rows\'s recent window of 2 partition widths)'}\n`);
}

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
// What the gateway runs for /rows: the recent partitions first (t >= now - 2 x PARTITION_WIDTH, as
// src/partner-port.ts computes it), the whole table only when they hold fewer than cnt; both measured.
const recentFrom = () => new Date(Date.now() - 2 * size.widthS * 1000).toISOString().replace('T', ' ').slice(0, 19);
let recentShort = 0;
const rowsDbRecent = await direct(ROWS_RECENT_QUERY.keysSql, (i) => [sluAt(i), 100, recentFrom()], 16, DURATION_MS, (r) => {
  if (r.length < 100) recentShort++;
  return '';
});
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
    ['/rows?cnt=100, 16 connections', `${fmt(rows.rps, 0)} req/s (p99 ${fmt(rows.p99)} ms)`, `ids query, recent partitions ${fmt(rowsDbRecent.rps, 0)} q/s (${recentShort} short of 100), whole table ${fmt(rowsDb.rps, 0)} q/s; full rows + format ${fmt(rowsLegacy.rps, 0)} q/s`, `${fmt((rows.rps / rowsDbRecent.rps) * 100, 0)}%`, '>= 5,000 req/s'],
    [`/time (${timeRows.toLocaleString()} rows)`, `p50 ${fmt(time.p50)} ms, p99 ${fmt(time.p99)} ms`, `full query + format p50 ${fmt(timeDb.p50)} / p99 ${fmt(timeDb.p99)} ms`, `${fmt(time.p99 / timeDb.p99, 1)}x`, 'p99 <= 100 ms'],
    [`/time, first touch of ${HEAVY} SLUs' pages`, `p50 ${fmt(firstTouch.p50)} ms, max ${fmt(firstTouch.max)} ms`, 'pages read from disk', '', '(no target)'],
  ],
);
console.log(`errors: latest ${latest.errors}, rows ${rows.errors}, time ${time.errors}; /latest body ${(latest.bytes / Math.max(1, latest.n) / 1024).toFixed(0)} KiB\n`);
const perReading = (b: number) => b / rowCount;
const x = (a: number, b: number) => `${fmt(a / b)}x`;
const seededPer = (b: number) => b / seeded.rows;
printTable(
  ['on disk, bytes per reading', 'this database, right after seeding', 'now (after other benchmarks wrote and deleted)', 'before: unpartitioned, as the old bench:rest left it', 'before: same, indexes rebuilt (like for like)', 'seeded / rebuilt'],
  [
    ['table + indexes (every partition)', fmt(seededPer(seeded.seededBytes.total), 1), fmt(perReading(storage.totalBytes), 1), fmt(BEFORE_BYTES_PER_READING, 1), fmt(BEFORE_PACKED_BYTES_PER_READING, 1), x(seededPer(seeded.seededBytes.total), BEFORE_PACKED_BYTES_PER_READING)],
    ['of which table', fmt(seededPer(seeded.seededBytes.heap), 1), fmt(perReading(storage.heapBytes), 1), fmt(BEFORE_HEAP_BYTES_PER_READING, 1), fmt(BEFORE_HEAP_BYTES_PER_READING, 1), x(seededPer(seeded.seededBytes.heap), BEFORE_HEAP_BYTES_PER_READING)],
    ['of which indexes', fmt(seededPer(seeded.seededBytes.index), 1), fmt(perReading(storage.indexBytes), 1), fmt(BEFORE_INDEX_BYTES_PER_READING, 1), fmt(BEFORE_PACKED_INDEX_BYTES_PER_READING, 1), x(seededPer(seeded.seededBytes.index), BEFORE_PACKED_INDEX_BYTES_PER_READING)],
    ['of which the primary key on id', '0 (none: a partitioned table cannot have one without t)', '0', fmt(BEFORE_PACKED_PKEY_BYTES_PER_READING, 1), fmt(BEFORE_PACKED_PKEY_BYTES_PER_READING, 1), ''],
  ],
);
console.log(`gateway start (process, migrations check, first fill of the latest-reading store) ${fmt(gatewayStartS, 1)} s; gateway settings beyond the defaults: ${Object.entries(gwEnv).map(([k, v]) => `${k}=${v}`).join(', ')}`);
console.log(`this database: ${(storage.totalBytes / 2 ** 30).toFixed(2)} GiB over ${storage.partitions} partitions (pg_total_relation_size of each) for ${rowCount.toLocaleString()} readings; before: ${BEFORE_SOURCE}`);

await gateway.stop();
await pool.end();
await embedded?.close();
