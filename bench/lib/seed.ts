// The reading history bench:rest and bench:stream run against, seeded once per size (bench-db.ts BenchSize) and
// reused: SLUS x PER_SLU readings, one every 15 s per SLU like the field units, ending at the seed time, plus
// HEAVY SLUs with HEAVY_PER readings each so /time can return its full 10,000-row page.
//
// Fast path: partitions for the whole history are made first (addPartitionsFrom: rows must not pile into the
// default partition), the two indexes are dropped, rows go in with INSERT ... SELECT generate_series in 1M-row
// statements, the indexes are built once at the end (a sorted build: packed leaves, no page splits), then VACUUM
// ANALYZE (visibility map for the index-only scans, statistics) and one partition maintenance round, which turns
// the past partitions cold. They are seeded while still hot, so no row pays the late-note trigger.
import type pg from 'pg';
import { addPartitionsFrom, maintainPartitions } from '../../src/db/partitions.ts';
import { COVERING_INDEX_DEF } from '../../src/db/takeover.ts';
import { readingStorage, type BenchSize } from './bench-db.ts';

export const HEAVY_BASE = 1_000_000;
export const HEAVY = 10;
export const HEAVY_PER = 20_000;
/** One reading every 15 s per SLU. */
export const STEP_S = 15;

export interface Seeded {
  /** Readings bench:rest keeps in the table (seeded SLUs and heavy SLUs only). */
  readonly rows: number;
  /** The newest seeded t, Unix seconds (the history ends there, whenever the benchmark runs). */
  readonly endS: number;
  /**
   * slu_reading on disk right after the seeding (every partition; table, indexes), before other benchmarks wrote
   * and deleted readings in it (their dead space is reused, never returned).
   */
  readonly seededBytes: { total: number; heap: number; index: number };
}

const spec = (s: BenchSize) => `v2 ${s.slus}x${s.perSlu}+${HEAVY}x${HEAVY_PER} every ${STEP_S}s, width ${s.widthS}s`;

/** The policy the gateway would run with for this size (PARTITION_* defaults, the size's width). */
export const benchPolicy = (s: BenchSize) => ({ widthS: s.widthS, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * 86_400 });

export async function seededState(pool: pg.Pool, size: BenchSize): Promise<Seeded | undefined> {
  type Row = { spec: string; n: string; end_s: string; total: string; heap: string; idx: string };
  const r = await pool
    .query<Row>(`select spec, n::text, end_s::text, total_bytes::text as total, heap_bytes::text as heap, index_bytes::text as idx from sluice_bench_seed`)
    .catch(() => ({ rows: [] as Row[] }));
  const row = r.rows[0];
  return row && row.spec === spec(size)
    ? { rows: Number(row.n), endS: Number(row.end_s), seededBytes: { total: Number(row.total), heap: Number(row.heap), index: Number(row.idx) } }
    : undefined;
}

/** Seeds the size's history unless it is there already; returns what is there. */
export async function ensureSeeded(pool: pg.Pool, size: BenchSize, log: (s: string) => void = console.log): Promise<Seeded> {
  const have = await seededState(pool, size);
  if (have) return have;
  const rows = size.slus * size.perSlu + HEAVY * HEAVY_PER;
  log(`seeding ${size.slus.toLocaleString()} SLUs x ${size.perSlu.toLocaleString()} readings + ${HEAVY} x ${HEAVY_PER.toLocaleString()} = ${rows.toLocaleString()} readings, partitions of ${size.widthS} s (once; kept in ${size.dir})...`);
  const t0 = Date.now();
  const c = await pool.connect();
  try {
    await c.query(`set statement_timeout = 0`);
    await c.query(`drop table if exists sluice_bench_seed`);
    await c.query('truncate slu_reading');
    const end = (await c.query<{ end: string; end_s: string }>(
      `select to_char(n, 'YYYY-MM-DD HH24:MI:SS.US') as end, extract(epoch from n)::bigint::text as end_s from (select date_trunc('second', now() at time zone 'utc') as n) x`,
    )).rows[0] as { end: string; end_s: string };
    const histS = Math.max(size.perSlu, HEAVY_PER) * STEP_S + 60;
    const from = (await c.query<{ f: string }>(`select to_char($1::timestamp - make_interval(secs => $2), 'YYYY-MM-DD HH24:MI:SS') as f`, [end.end, histS])).rows[0]?.f as string;
    // The partitions from the current one on were made by the migration (or an earlier run): made ahead now.
    await maintainPartitions(pool, { ...benchPolicy(size), now: end.end, coldAfterS: 1e9 });
    const made = await addPartitionsFrom(pool, from, size.widthS);
    log(`  ${made.length} partitions added for the history from ${from}`);
    await hotForSeeding(c);
    await c.query('drop index if exists slu_reading_slu_t_v_idx');
    await c.query('drop index if exists slu_reading_xid_idx');
    const chunk = Math.max(1, Math.floor(1_000_000 / size.slus));
    for (let n = 0; n < size.perSlu; n += chunk) {
      // One reading every 15 s per SLU, ending at `end`; SLUs interleaved in the heap as concurrent writers leave them.
      await c.query(
        `insert into slu_reading (slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)
         select s, $4::timestamp - make_interval(secs => ($3::int - 1 - n) * ${STEP_S} + s * 0.001),
                0.8 + random() * 0.2, 0.8 + random() * 0.2, 0.8 + random() * 0.2,
                n * 1.37 + s, n * 1.21 + s, n * 1.11 + s, random() * 50, random() * 50, random() * 50,
                225 + (random() * 10)::int, 225 + (random() * 10)::int, 225 + (random() * 10)::int
         from generate_series($2::int, least($2::int + ${chunk} - 1, $3::int - 1)) n, generate_series(1, $1::int) s`,
        [size.slus, n, size.perSlu, end.end],
      );
      const done = Math.min(size.perSlu, n + chunk) * size.slus;
      if (process.stdout.isTTY) process.stdout.write(`\r  ${done.toLocaleString()} rows, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      else if ((n / chunk) % 10 === 9) log(`  ${done.toLocaleString()} rows, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
    if (process.stdout.isTTY) process.stdout.write('\n');
    // /time must return its full 10,000 rows (the cap), so HEAVY SLUs get HEAVY_PER readings each, one every
    // 15 s, interleaved with each other in the heap like real concurrent SLUs.
    await c.query(
      `insert into slu_reading (slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)
       select $1::int + s, $4::timestamp - make_interval(secs => ($3::int - n) * ${STEP_S} + s * 0.001),
              0.8 + random() * 0.2, 0.8 + random() * 0.2, 0.8 + random() * 0.2, n * 1.37, n * 1.21, n * 1.11,
              random() * 50, random() * 50, random() * 50, 225 + (random() * 10)::int, 230, 231
       from generate_series(1, $3::int) n, generate_series(1, $2::int) s`,
      [HEAVY_BASE, HEAVY, HEAVY_PER, end.end],
    );
    const def = (await c.query<{ n: string }>(`select count(*)::text as n from slu_reading_default`)).rows[0]?.n;
    log(`  ${rows.toLocaleString()} rows in ${((Date.now() - t0) / 1000).toFixed(0)} s (${def} in the default partition); building indexes...`);
    const t1 = Date.now();
    await c.query(`set maintenance_work_mem = '1GB'`);
    // The partitioned indexes as the takeover makes them (src/db/takeover.ts); each partition gets its own.
    await c.query(`create index slu_reading_xid_idx on slu_reading (xid, id)`);
    await c.query(`create index slu_reading_slu_t_v_idx ${COVERING_INDEX_DEF}`);
    log(`  indexes in ${((Date.now() - t1) / 1000).toFixed(0)} s; vacuum analyze...`);
    await c.query('vacuum analyze slu_reading');
    const st = await readingStorage(c);
    await c.query(`create table sluice_bench_seed (spec text not null, n bigint not null, end_s bigint not null, total_bytes bigint not null, heap_bytes bigint not null, index_bytes bigint not null)`);
    await c.query(`insert into sluice_bench_seed values ($1, $2, $3, $4, $5, $6)`, [spec(size), rows, end.end_s, st.totalBytes, st.heapBytes, st.indexBytes]);
  } finally {
    c.release();
  }
  log(`  seeded in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const done = await seededState(pool, size);
  if (!done) throw new Error('the seeding did not record itself');
  return done;
}

/**
 * Past partitions are cold from birth (addPartitionsFrom): every row written into one is noted for the stream, a
 * trigger call per row. A history seeded before any gateway runs has nothing to note, so the benchmark seeds its
 * partitions hot (late-note trigger dropped) and the maintenance round after the seeding turns them cold again
 * (sluice_mark_cold), as it would any partition past its time. Only for a benchmark's own database.
 */
export async function hotForSeeding(c: pg.ClientBase): Promise<number> {
  const cold = await c.query<{ name: string }>(`select name from sluice_partition where cold_xid is not null`);
  for (const { name } of cold.rows) {
    await c.query(`drop trigger if exists sluice_reading_late on ${name}`);
    await c.query(`update sluice_partition set cold_xid = null where name = $1`, [name]);
  }
  return cold.rows.length;
}

/** One maintenance round as a gateway of this size would run it (made ahead for now, the past turned cold). */
export async function maintain(pool: pg.Pool, size: BenchSize): Promise<void> {
  await maintainPartitions(pool, benchPolicy(size));
}
