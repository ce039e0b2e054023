// npm run bench:partitions — what time-partitioned slu_reading (sql/010) costs and saves, each figure beside its
// reference measured in the same run, in databases of its own on an embedded server under var/bench-partitions-pg
// (or DATABASE_URL's server: it creates and drops databases named sluice_bench_*):
//
//  (a) the stream feed's read, readSince (src/db/since.ts) with hotFrom from a PartitionMap, on its own connection
//      with a prepared statement planned per call, exactly as the gateway's feed runs it, with a writer committing
//      a small batch between reads (each read returns those rows). The same rows in two layouts: one partition (or
//      a few) and 400 hourly partitions made by addPartitionsFrom, all but the newest few turned cold by
//      maintainPartitions. Also the naive read (every partition read directly: hotFrom = -infinity) at 400, and
//      what a write into a cold partition costs (the late-note trigger) against a hot one.
//  (b) retention: a day of 5.76 million readings (1,000 SLUs, one every 15 s) pruned by dropping its partition
//      (maintainPartitions with a retention) against DELETE and sql/002's sluice_prune(interval) on a plain table
//      with the old schema (migrations 001-009), with a writer doing single-row inserts throughout.
//
// BENCH_FEED_PARTITIONS (400), BENCH_FEED_ROWS_PER_HOUR (10,000), BENCH_FEED_READS (3,000), BENCH_FEED_NAIVE_READS
// (300), BENCH_RET_SLUS (1,000), BENCH_PARTS (feed,cold,retention) change the run.
import os from 'node:os';
import pg from 'pg';
import { loadMigrations, migrate } from '../src/db/migrate.ts';
import { PartitionMap } from '../src/db/partition-map.ts';
import { addPartitionsFrom, maintainPartitions, type PartitionPolicy } from '../src/db/partitions.ts';
import { createPool } from '../src/db/pool.ts';
import { currentPosition, readSince, type HotFrom } from '../src/db/since.ts';
import { benchServer, READING_LEAVES, readingStorage } from './lib/bench-db.ts';
import { hotForSeeding } from './lib/seed.ts';
import { fmt, printTable, summary } from './lib/stats.ts';

const env = process.env;
const HOURS = Number(env.BENCH_FEED_PARTITIONS ?? 400);
const ROWS_PER_HOUR = Number(env.BENCH_FEED_ROWS_PER_HOUR ?? 10_000);
const READS = Number(env.BENCH_FEED_READS ?? 3000);
const NAIVE_READS = Number(env.BENCH_FEED_NAIVE_READS ?? 300);
const BATCH = 5;
const RET_SLUS = Number(env.BENCH_RET_SLUS ?? 1000);
const RET_PER_SLU = 86_400 / 15; // one reading every 15 s for a day
const PARTS = new Set((env.BENCH_PARTS ?? 'feed,cold,retention').split(','));
const DAY_S = 86_400;
const HOUR_S = 3600;

const server = await benchServer('var/bench-partitions-pg', Number(env.BENCH_PG_PORT ?? 54343));
const version = await (async () => {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  try {
    return (await c.query<{ server_version: string }>('show server_version')).rows[0]?.server_version;
  } finally {
    await c.end();
  }
})();
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${version}\n`);

const poolFor = (url: string, max = 4) => createPool({ connectionString: url, max, connectTimeoutMs: 10_000, queryTimeoutMs: 3_600_000 });
const policy = (widthS: number, extra: Partial<PartitionPolicy> = {}): PartitionPolicy => ({ widthS, ahead: 2, coldAfterS: HOUR_S, replayWindowS: 7 * DAY_S, ...extra });
const withClient = async <T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
  const c = await pool.connect();
  try {
    return await fn(c);
  } finally {
    c.release();
  }
};
const q1 = async <T extends pg.QueryResultRow>(db: pg.Pool | pg.ClientBase, sql: string, values: unknown[] = []): Promise<T> => (await db.query<T>(sql, values)).rows[0] as T;

/** A timestamp literal (UTC) `s` seconds from `base`. */
async function shift(db: pg.Pool, base: string, s: number): Promise<string> {
  return (await q1<{ t: string }>(db, `select to_char($1::timestamp + make_interval(secs => $2::float8), 'YYYY-MM-DD HH24:MI:SS') as t`, [base, s])).t;
}

const READING_COLS = `slu_id, t, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3`;
const READING_VALUES = `0.8 + random() * 0.2, 0.8 + random() * 0.2, 0.8 + random() * 0.2, random() * 60000, random() * 60000, random() * 60000,
  random() * 50, random() * 50, random() * 50, 225 + (random() * 10)::int, 225 + (random() * 10)::int, 225 + (random() * 10)::int`;

/** `total` readings from `from`, evenly spaced by `stepS`, SLUs 1..slus in turn, in 1M-row statements. */
async function seedEven(db: pg.Pool, from: string, total: number, stepS: number, slus: number): Promise<void> {
  for (let i = 0; i < total; i += 1_000_000) {
    await db.query(
      `insert into slu_reading (${READING_COLS})
       select 1 + i % $4::int, $1::timestamp + make_interval(secs => i * $3::float8), ${READING_VALUES}
       from generate_series($2::bigint, least($2::bigint + 999999, $5::bigint - 1)) i`,
      [from, i, stepS, slus, total],
    );
  }
}

// ------------------------------------------------------------------------------------------------ (a) feed read
interface Layout {
  readonly name: string;
  readonly url: string;
  readonly pool: pg.Pool;
  /** The newest seeded t: writes at it land in a hot partition. */
  readonly end: string;
  readonly partitions: number;
  readonly hot: number;
  readonly map: PartitionMap;
}

/**
 * HOURS hours of readings (ROWS_PER_HOUR each) ending at the database's now, in partitions of widthS: those of the
 * history made by addPartitionsFrom and seeded while hot, then one maintenance round at `end` turns every
 * partition that ended more than PARTITION_COLD_AFTER (1 hour) before it cold.
 */
async function layout(name: string, db: string, widthS: number): Promise<Layout> {
  const url = await server.fresh(db);
  const pool = poolFor(url);
  await migrate(pool, undefined, { widthS, ahead: 2 });
  const end = (await q1<{ t: string }>(pool, `select to_char(now() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS') as t`)).t;
  const from = await shift(pool, end, -HOURS * HOUR_S);
  await addPartitionsFrom(pool, from, widthS);
  await withClient(pool, hotForSeeding); // seeded hot, turned cold by the round below (bench/lib/seed.ts)
  await seedEven(pool, from, HOURS * ROWS_PER_HOUR, HOUR_S / ROWS_PER_HOUR, 100);
  await pool.query('vacuum analyze slu_reading');
  await maintainPartitions(pool, policy(widthS, { now: end }));
  const map = new PartitionMap(pool);
  await map.refresh();
  const p = await q1<{ n: string; hot: string }>(pool, `select count(*)::text as n, count(*) filter (where cold_xid is null)::text as hot from sluice_partition`);
  return { name, url, pool, end, partitions: Number(p.n), hot: Number(p.hot), map };
}


interface Reads {
  /** Milliseconds per read. */
  readonly samples: number[];
  /** Reads that did not return exactly the batch written before them. */
  readonly wrong: number;
}

/**
 * `reads` feed reads on a connection set up as the gateway's feed connection (FEED_CONNECTION=dedicated: one
 * connection, plan_cache_mode=force_custom_plan, enable_sort=off, prepared statement), each after a writer
 * committed BATCH readings at the layout's newest t (a hot partition). `raw` times the floor instead: one round
 * trip of the snapshot alone, on the same kind of connection.
 */
async function feedReads(l: Layout, hotFrom: HotFrom | 'raw', reads: number, proto = false, at = l.end): Promise<Reads> {
  const feed = createPool({ connectionString: l.url, max: 1, connectTimeoutMs: 10_000, queryTimeoutMs: 600_000, applicationName: 'sluice-feed', settings: { plan_cache_mode: 'force_custom_plan', enable_sort: 'off' } });
  const writer = new pg.Client({ connectionString: l.url });
  await writer.connect();
  try {
    let since = (await currentPosition(feed)).snapshot;
    const samples: number[] = [];
    let wrong = 0;
    const warm = Math.min(50, Math.ceil(reads / 10));
    for (let i = 0; i < warm + reads; i++) {
      await writer.query(
        `insert into slu_reading (${READING_COLS}) select 1 + g, $1::timestamp + make_interval(secs => g), ${READING_VALUES} from generate_series(1, ${BATCH}) g`,
        [at],
      );
      const t0 = performance.now();
      if (hotFrom === 'raw') {
        await feed.query({ name: 'bench_raw_snapshot', text: 'select pg_current_snapshot()::text' });
      } else {
        const r = await readSince(feed, since, 1000, { prepared: true, hotFrom });
        since = r.snapshot;
        if (r.rows.length !== BATCH && i >= warm) wrong++;
      }
      if (i >= warm) samples.push(performance.now() - t0);
    }
    return { samples, wrong };
  } finally {
    await writer.end();
    await feed.end();
  }
}

/**
 * EXPLAIN ANALYZE of the feed's very statement (readSince's text and values, captured) from the current snapshot,
 * as the feed connection plans it: how many partitions the plan holds, planning and execution time.
 */
async function feedPlan(l: Layout, hotFrom: HotFrom, proto = false): Promise<{ scans: number; planningMs: number; executionMs: number; text: string }> {
  const c = new pg.Client({ connectionString: l.url });
  await c.connect();
  try {
    await c.query(`set enable_sort = off`);
    const since = (await currentPosition(c as unknown as pg.PoolClient)).snapshot;
    let captured: { text: string; values: unknown[] } | undefined;
    const fake = { query: async (cfg: { text: string; values: unknown[] }) => ((captured = cfg), { rows: [['1:1:', '0/0', null]] }) };
    await readSince(fake as unknown as pg.Pool, since, 1000, { hotFrom });
    if (!captured) throw new Error('readSince sent no query');
    const cap = captured as { text: string; values: unknown[] };
    for (let i = 0; i < 3; i++) await c.query(cap.text, cap.values); // warm, like the feed's connection
    const plan = (await c.query<{ 'QUERY PLAN': string }>(`explain (analyze, costs off, summary on) ${cap.text}`, cap.values)).rows.map((r) => r['QUERY PLAN']);
    const num = (re: RegExp) => Number(plan.map((x) => re.exec(x)?.[1]).find((x) => x !== undefined) ?? NaN);
    return { scans: plan.filter((x) => / on slu_reading_\w+/.test(x)).length, planningMs: num(/Planning Time: ([\d.]+)/), executionMs: num(/Execution Time: ([\d.]+)/), text: plan.join('\n') };
  } finally {
    await c.end();
  }
}

/** 1,000-row statements and single-row inserts at t (a hot, cold or the default partition, or a plain table). */
async function insertRate(url: string, table: string, t: string, statements: number, singles: number): Promise<{ bulk: number; single: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    // Rows in time order (a backfill): the late note's t range widens with every row, the most it is updated.
    const bulk = `insert into ${table} (${READING_COLS}) select 1 + g % 100, $1::timestamp + make_interval(secs => g * 0.001), ${READING_VALUES} from generate_series(1, 1000) g`;
    for (let i = 0; i < 5; i++) await c.query(bulk, [t]);
    let t0 = performance.now();
    for (let i = 0; i < statements; i++) await c.query(bulk, [t]);
    const bulkRate = (statements * 1000) / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    for (let i = 0; i < singles; i++) await c.query(`insert into ${table} (${READING_COLS}) values (1, $1::timestamp, 0.9, 0.9, 0.9, 1, 1, 1, 1, 1, 1, 230, 230, 230)`, [t]);
    return { bulk: bulkRate, single: singles / ((performance.now() - t0) / 1000) };
  } finally {
    await c.end();
  }
}

if (PARTS.has('feed') || PARTS.has('cold')) {
  console.log(`(a) seeding ${HOURS} hours x ${ROWS_PER_HOUR.toLocaleString()} readings = ${(HOURS * ROWS_PER_HOUR).toLocaleString()} readings twice (one partition; ${HOURS} hourly partitions)...`);
  const t0 = Date.now();
  // One partition: a width far wider than the history (a year), so the history and now share one or two.
  const one = await layout('one partition', 'sluice_bench_feed_1', 366 * DAY_S);
  const many = await layout(`${HOURS} partitions`, `sluice_bench_feed_${HOURS}`, HOUR_S);
  const filled = async (l: Layout) => (await readingStorage(l.pool)).withRows;
  console.log(`  seeded in ${((Date.now() - t0) / 1000).toFixed(0)} s: "${one.name}": ${one.partitions} partitions (${await filled(one)} holding readings, ${one.hot} hot); "${many.name}": ${many.partitions} partitions (${await filled(many)} holding readings, ${many.hot} hot, ${many.partitions - many.hot} cold)\n`);

  if (PARTS.has('feed')) {
    // In interleaved rounds, so a disturbance on this shared machine (the other core's work) does not land on one
    // layout only; the percentiles are over every read of every round.
    const kinds = ['oneRaw', 'manyRaw', 'one', 'many', 'oneNaive', 'manyNaive', 'manyLate'] as const;
    // Late writes: the batch goes into a cold partition (half-way back), so the read finds it through its note.
    const coldAt = await shift(many.pool, many.end, -(HOURS / 2) * HOUR_S);
    const all = Object.fromEntries(kinds.map((k) => [k, { samples: [] as number[], wrong: 0 }])) as Record<(typeof kinds)[number], { samples: number[]; wrong: number }>;
    const rounds = 3;
    for (let r = 0; r < rounds; r++) {
      const runs: Array<[(typeof kinds)[number], Layout, HotFrom | 'raw', number, boolean?, string?]> = [
        ['oneRaw', one, 'raw', READS], ['manyRaw', many, 'raw', READS],
        ['one', one, one.map.hotFrom, READS], ['many', many, many.map.hotFrom, READS],
        ['oneNaive', one, () => '-infinity', NAIVE_READS], ['manyNaive', many, () => '-infinity', NAIVE_READS],
        ['manyLate', many, many.map.hotFrom, NAIVE_READS, false, coldAt],
      ];
      for (const [k, l, h, n, proto, at] of runs) {
        const x = await feedReads(l, h, Math.ceil(n / rounds), proto === true, at);
        all[k].samples.push(...x.samples);
        all[k].wrong += x.wrong;
      }
    }
    const m = Object.fromEntries(kinds.map((k) => [k, { ...summary(all[k].samples), wrong: all[k].wrong }])) as Record<(typeof kinds)[number], ReturnType<typeof summary> & { wrong: number }>;
    const hotOne = one.map.hotFrom({ xmin: Number.MAX_SAFE_INTEGER, xmax: Number.MAX_SAFE_INTEGER, xip: [] });
    const hotMany = many.map.hotFrom({ xmin: Number.MAX_SAFE_INTEGER, xmax: Number.MAX_SAFE_INTEGER, xip: [] });
    const ratio = (a: number, b: number) => `${fmt(a / b)}x`;
    printTable(
      ['feed read (readSince, prepared, planned per call)', `${one.name} (${one.partitions} partitions)`, `${HOURS} hourly partitions (${many.hot} hot)`, `${HOURS} / 1`, 'goal'],
      [
        ['raw limit: snapshot round trip alone, p50 / p99', `${fmt(m.oneRaw.p50, 3)} / ${fmt(m.oneRaw.p99, 3)} ms`, `${fmt(m.manyRaw.p50, 3)} / ${fmt(m.manyRaw.p99, 3)} ms`, `${ratio(m.manyRaw.p50, m.oneRaw.p50)} / ${ratio(m.manyRaw.p99, m.oneRaw.p99)}`, ''],
        ['hot bound from the PartitionMap (the gateway), p50', `${fmt(m.one.p50, 3)} ms (${ratio(m.one.p50, m.oneRaw.p50)} raw)`, `${fmt(m.many.p50, 3)} ms (${ratio(m.many.p50, m.manyRaw.p50)} raw)`, ratio(m.many.p50, m.one.p50), 'not slower at 400'],
        ['hot bound from the PartitionMap (the gateway), p99', `${fmt(m.one.p99, 3)} ms`, `${fmt(m.many.p99, 3)} ms`, ratio(m.many.p99, m.one.p99), 'not slower at 400'],
        ['each batch written into a cold partition (read through its note), p50 / p99', '-', `${fmt(m.manyLate.p50, 3)} / ${fmt(m.manyLate.p99, 3)} ms`, '', ''],
        ['naive: every partition read directly (-infinity), p50', `${fmt(m.oneNaive.p50, 3)} ms`, `${fmt(m.manyNaive.p50, 3)} ms`, ratio(m.manyNaive.p50, m.oneNaive.p50), ''],
        ['naive: every partition read directly (-infinity), p99', `${fmt(m.oneNaive.p99, 3)} ms`, `${fmt(m.manyNaive.p99, 3)} ms`, ratio(m.manyNaive.p99, m.oneNaive.p99), ''],
      ],
    );
    console.log(`reads: ${m.one.n} / ${m.many.n} with the hot bound, ${m.oneNaive.n} / ${m.manyNaive.n} naive, ${m.manyLate.n} late (batch at ${coldAt}), each after a commit of ${BATCH} readings; reads not returning exactly that batch: ${kinds.reduce((a, k) => a + m[k].wrong, 0)}`);
    console.log(`hot bound: "${one.name}" t >= ${hotOne}, ${HOURS} partitions t >= ${hotMany}; naive at ${HOURS} / hot bound at ${HOURS}: p50 ${ratio(m.manyNaive.p50, m.many.p50)}, p99 ${ratio(m.manyNaive.p99, m.many.p99)}`);
    const plans = [await feedPlan(one, one.map.hotFrom), await feedPlan(many, many.map.hotFrom), await feedPlan(many, () => '-infinity')];
    const planLine = (p: { scans: number; planningMs: number; executionMs: number }) => `${p.scans} partition scans in the plan, planning ${fmt(p.planningMs, 3)} ms, execution ${fmt(p.executionMs, 3)} ms`;
    console.log(`EXPLAIN ANALYZE of the same statement (a custom plan, as the feed's connection makes one per read): "${one.name}" with the hot bound: ${planLine(plans[0]!)}; ${HOURS} partitions with the hot bound: ${planLine(plans[1]!)}; naive at ${HOURS}: ${planLine(plans[2]!)}`);
    if (env.BENCH_SHOW_PLANS) for (const p of plans) console.log(p.text + '\n');
    console.log(`max: ${fmt(m.one.max, 1)} / ${fmt(m.many.max, 1)} ms with the hot bound, ${fmt(m.oneNaive.max, 1)} / ${fmt(m.manyNaive.max, 1)} ms naive (${rounds} interleaved rounds)\n`);
  }

  if (PARTS.has('cold')) {
    const plain = 'bench_plain_reading';
    await many.pool.query(`drop table if exists ${plain}`);
    await many.pool.query(`create table ${plain} (like slu_reading including defaults including indexes)`);
    const hotT = (await q1<{ t: string }>(many.pool, `select to_char(date_trunc('hour', $1::timestamp), 'YYYY-MM-DD HH24:MI:SS') as t`, [many.end])).t;
    const coldT = await shift(many.pool, hotT, -(HOURS / 2) * HOUR_S);
    const defaultT = '1990-01-01 00:00:00';
    const statements = Number(env.BENCH_COLD_STATEMENTS ?? 100);
    const singles = Number(env.BENCH_COLD_SINGLES ?? 500);
    const targets = [
      { name: 'plain table, no trigger (raw limit)', table: plain, t: hotT },
      { name: 'hot partition', table: 'slu_reading', t: hotT },
      { name: 'cold partition (late-note trigger)', table: 'slu_reading', t: coldT },
      { name: 'default partition (always noted)', table: 'slu_reading', t: defaultT },
    ];
    const runs = new Map<string, Array<{ bulk: number; single: number }>>();
    for (let r = 0; r < 3; r++) {
      for (const x of targets) runs.set(x.name, [...(runs.get(x.name) ?? []), await insertRate(many.url, x.table, x.t, statements, singles)]);
    }
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const rate = (name: string) => ({ bulk: med((runs.get(name) ?? []).map((x) => x.bulk)), single: med((runs.get(name) ?? []).map((x) => x.single)) });
    const raw = rate(targets[0]!.name);
    const hot = rate(targets[1]!.name);
    printTable(
      [`writes (${HOURS} hourly partitions)`, 'rows/s, 1,000-row statements', 'vs raw', 'vs hot', 'single-row inserts/s', 'vs raw', 'vs hot'],
      targets.map((x) => {
        const v = rate(x.name);
        return [x.name, fmt(v.bulk, 0), `${fmt((v.bulk / raw.bulk) * 100, 0)}%`, `${fmt((v.bulk / hot.bulk) * 100, 0)}%`, fmt(v.single, 0), `${fmt((v.single / raw.single) * 100, 0)}%`, `${fmt((v.single / hot.single) * 100, 0)}%`];
      }),
    );
    const notes = await q1<{ n: string }>(many.pool, `select count(*)::text as n from sluice_reading_late`);
    console.log(`medians of 3 rounds of ${statements} statements and ${singles} single-row inserts each; rows in time order (the late note's range widens with each); late notes written: ${notes.n} (one per transaction)\n`);
    await many.pool.query(`drop table ${plain}`);
  }
  await one.pool.end();
  await many.pool.end();
  await server.drop('sluice_bench_feed_1');
  await server.drop(`sluice_bench_feed_${HOURS}`);
}

// ------------------------------------------------------------------------------------------------ (b) retention
interface Writer {
  /** Latencies (ms) of the single-row inserts that started in [from, to). */
  during(from: number, to: number): { n: number; max: number; p99: number; p50: number };
  stop(): Promise<number>;
}

/** A loop of single-row inserts (t = now, a hot partition) on its own connection, every latency kept. */
async function startWriter(url: string): Promise<Writer> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const samples: Array<[start: number, ms: number]> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await c.query(`insert into slu_reading (slu_id, p1, p2, p3, k1, a1, v1, v2, v3) values (999999, 0.9, 0.9, 0.9, 1, 1, 230, 230, 230)`);
      samples.push([t0, performance.now() - t0]);
    }
  })();
  return {
    during(from, to) {
      const s = summary(samples.filter(([t]) => t >= from && t < to).map(([, ms]) => ms));
      return { n: s.n, max: s.max, p99: s.p99, p50: s.p50 };
    },
    async stop() {
      running = false;
      await loop;
      await c.end();
      return samples.length;
    },
  };
}

const lsn = async (db: pg.Pool) => (await q1<{ l: string }>(db, `select pg_current_wal_lsn()::text as l`)).l;
const walSince = async (db: pg.Pool, from: string) => Number((await q1<{ b: string }>(db, `select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text as b`, [from])).b);

/** Dead tuples in slu_reading (every partition), after this and every session's pending statistics are flushed. */
async function deadTuples(db: pg.Pool): Promise<number> {
  await new Promise((r) => setTimeout(r, 200));
  const c = await db.connect();
  try {
    await c.query('select pg_stat_clear_snapshot()');
    return Number((await q1<{ n: string }>(c, `select coalesce(sum(s.n_dead_tup), 0)::text as n from ${READING_LEAVES} t join pg_stat_user_tables s on s.relid = t.relid`)).n);
  } finally {
    c.release();
  }
}

interface PruneResult {
  readonly name: string;
  readonly wallMs: number;
  readonly walBytes: number;
  readonly walTotal: number;
  readonly deleted: string;
  readonly dead: number;
  readonly sizeBefore: number;
  readonly sizeAfter: number;
  readonly writer: { n: number; max: number; p99: number; p50: number };
  readonly rest?: string;
}

/**
 * Runs `op` on a connection of its own after a CHECKPOINT (every run pays the first-touch full-page images alike),
 * with the writer going: wall time, WAL (the writer's share taken out), dead tuples and size after, the stall.
 */
async function measure(name: string, db: pg.Pool, url: string, writerWalPerInsert: number, op: (c: pg.PoolClient) => Promise<string>): Promise<PruneResult> {
  await db.query('checkpoint').catch(() => undefined); // needs pg_checkpoint on a DATABASE_URL server
  const sizeBefore = (await readingStorage(db)).totalBytes;
  const writer = await startWriter(url);
  const c = await db.connect();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const from = await lsn(db);
    const t0 = performance.now();
    const deleted = await op(c);
    const wallMs = performance.now() - t0;
    const walTotal = await walSince(db, from);
    await new Promise((r) => setTimeout(r, 300));
    const w = writer.during(t0, t0 + wallMs);
    await writer.stop();
    // This session's counts of dead tuples reach the statistics when it next goes idle, forced.
    await c.query('select pg_stat_force_next_flush()').catch(() => undefined);
    await c.query('select 1');
    const dead = await deadTuples(db);
    const sizeAfter = (await readingStorage(db)).totalBytes;
    return { name, wallMs, walTotal, walBytes: Math.max(0, walTotal - w.n * writerWalPerInsert), deleted, dead, sizeBefore, sizeAfter, writer: w };
  } finally {
    c.release();
  }
}

if (PARTS.has('retention')) {
  const rows = RET_SLUS * RET_PER_SLU;
  console.log(`(b) retention: seeding a day of ${rows.toLocaleString()} readings (${RET_SLUS.toLocaleString()} SLUs, one every 15 s)...`);
  const t0 = Date.now();
  const seedDay = async (db: pg.Pool, day: string) => {
    // Time-major like concurrent SLUs: every SLU's reading at 00:00:00, then at 00:00:15, ...
    await seedEven(db, day, rows, 15 / RET_SLUS, RET_SLUS);
    await db.query('vacuum analyze slu_reading');
  };

  // Partitioned (sql/010), daily partitions: the day two days back in a partition of its own, cold (it is past).
  const partUrl = await server.fresh('sluice_bench_ret_part');
  const part = poolFor(partUrl);
  await migrate(part, undefined, { widthS: DAY_S, ahead: 2 });
  const today = (await q1<{ t: string }>(part, `select to_char(date_trunc('day', now() at time zone 'utc'), 'YYYY-MM-DD HH24:MI:SS') as t`)).t;
  const day = await shift(part, today, -2 * DAY_S);
  const dayEnd = await shift(part, day, DAY_S);
  await addPartitionsFrom(part, day, DAY_S);
  await withClient(part, hotForSeeding);
  await seedDay(part, day);
  await maintainPartitions(part, policy(DAY_S));

  // Before partitioning (migrations 001-009): slu_reading a plain table with its primary key, xid and covering indexes.
  const plainUrl = await server.fresh('sluice_bench_ret_plain');
  const plain = poolFor(plainUrl);
  await migrate(plain, (await loadMigrations()).filter((x) => x.id < 10));
  await seedDay(plain, day);
  // Autovacuum would start on its own within a minute of a DELETE this size: off, so "dead tuples left" is what the
  // DELETE leaves, and the VACUUM that must follow is measured on its own.
  await plain.query('alter table slu_reading set (autovacuum_enabled = false)');
  const partRows = await q1<{ n: string; name: string }>(part, `select count(*)::text as n, (select name from sluice_partition where lo = $1::timestamp) as name from slu_reading where t >= $1::timestamp and t < $2::timestamp`, [day, dayEnd]);
  const plainRows = await q1<{ n: string }>(plain, `select count(*)::text as n from slu_reading where t < $1::timestamp`, [dayEnd]);
  console.log(`  seeded in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${Number(partRows.n).toLocaleString()} readings of ${day.slice(0, 10)} in partition ${partRows.name}; ${Number(plainRows.n).toLocaleString()} in the plain table\n`);

  // The raw reference: the writer alone (its latency, and the WAL of one insert, taken out of the figures below).
  const base = await (async () => {
    await plain.query('checkpoint');
    const w = await startWriter(plainUrl);
    await new Promise((r) => setTimeout(r, 500));
    const from = await lsn(plain);
    const t = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const wal = await walSince(plain, from);
    const s = w.during(t, t + 3000);
    await w.stop();
    return { ...s, walPerInsert: wal / Math.max(1, s.n) };
  })();

  const results: PruneResult[] = [];
  results.push(
    await measure(`drop the day's partition (maintainPartitions, RETENTION 1 day)`, part, partUrl, base.walPerInsert, async () => {
      // "now" = today 00:00 and a retention of one day: exactly the partitions that ended a day before, i.e. `day`.
      const r = await maintainPartitions(part, policy(DAY_S, { retentionS: DAY_S, now: today })); // its own connection
      return r ? r.dropped.map((d) => `${d.name} (~${d.rows.toLocaleString()})`).join(', ') || 'nothing' : 'lock busy';
    }),
  );
  const vacuum = async (label: string) =>
    measure(`  then VACUUM slu_reading (${label})`, plain, plainUrl, base.walPerInsert, async (c) => {
      await c.query('vacuum slu_reading');
      return '-';
    });
  results.push(
    await measure(`DELETE from slu_reading where t < '${dayEnd}' (plain table)`, plain, plainUrl, base.walPerInsert, async (c) => {
      const r = await c.query(`delete from slu_reading where t < $1::timestamp`, [dayEnd]);
      return (r.rowCount ?? 0).toLocaleString();
    }),
  );
  results.push(await vacuum('after the DELETE'));
  // Same again through sql/002's function, on a freshly seeded identical table.
  await plain.query('truncate slu_reading');
  await seedDay(plain, day);
  results.push(
    await measure(`sluice_prune(now - '${dayEnd}') (sql/002, plain table)`, plain, plainUrl, base.walPerInsert, async (c) => {
      const r = await q1<{ n: string }>(c, `select sluice_prune((now() at time zone 'utc') - $1::timestamp)::text as n`, [dayEnd]);
      return Number(r.n).toLocaleString();
    }),
  );
  results.push(await vacuum('after sluice_prune'));

  const drop = results[0] as PruneResult;
  const mib = (b: number) => (b < 2 ** 20 ? `${(b / 1024).toFixed(0)} KiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
  printTable(
    [`prune a day (${rows.toLocaleString()} readings)`, 'readings removed', 'wall time', 'vs drop', 'WAL', 'vs drop', 'dead tuples left', 'slu_reading on disk before -> after', "writer's longest stall (p99, inserts)"],
    [
      ['writer alone (raw limit: single-row inserts, 3 s)', '-', '-', '', `${fmt(base.walPerInsert, 0)} B per insert`, '', '-', '-', `${fmt(base.max)} ms (p99 ${fmt(base.p99)} ms, ${base.n})`],
      ...results.map((r) => [
        r.name, r.deleted, `${fmt(r.wallMs / 1000, 3)} s`, r === drop ? '' : `${fmt(r.wallMs / drop.wallMs, 0)}x`, mib(r.walBytes), r === drop ? '' : `${fmt(r.walBytes / Math.max(1, drop.walBytes), 0)}x`,
        r.dead.toLocaleString(), `${mib(r.sizeBefore)} -> ${mib(r.sizeAfter)}`, `${fmt(r.writer.max)} ms (p99 ${fmt(r.writer.p99)} ms, ${r.writer.n})`,
      ]),
    ],
  );
  console.log(`WAL: pg_current_wal_lsn() before and after, after a CHECKPOINT, less the writer's inserts at ${fmt(base.walPerInsert, 0)} B each (measured alone); totals ${results.map((r) => mib(r.walTotal)).join(', ')}`);
  console.log(`the DELETE side is a plain table with the schema before partitioning (migrations 001-009: primary key, xid and covering indexes), holding only that day and the writer's rows: with months kept it reads every month (no index on t alone), the partition drop does not; autovacuum off on it so the dead tuples stay to be counted, and the VACUUM that must follow is its own row`);
  await part.end();
  await plain.end();
  await server.drop('sluice_bench_ret_part');
  await server.drop('sluice_bench_ret_plain');
}

await server.embedded?.close();
