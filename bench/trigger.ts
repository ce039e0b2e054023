// npm run bench:trigger — what the NOTIFY trigger costs writers: no trigger (the raw limit), the statement-level
// wake-up sluice used before issue 12, a per-row trigger with a JSON payload, a statement-level trigger with a
// transition table, and sluice's trigger now (sql/014: a statement of at most 200 rows sends its rows, with a MAC).
// Bulk (1,000-row statements, over the payload limit), 100-row statements (rows in the payload) and single-row
// inserts, in scratch tables of the benchmark database.
import { benchDatabase } from './lib/bench-db.ts';
import { fmt, printTable } from './lib/stats.ts';

const BULK_STATEMENTS = Number(process.env.BENCH_BULK_STATEMENTS ?? 100);
const BULK_ROWS = 1000;
const MID_STATEMENTS = Number(process.env.BENCH_MID_STATEMENTS ?? 500);
const MID_ROWS = 100;
const SINGLE = Number(process.env.BENCH_SINGLE_ROWS ?? 3000);

const { pool, embedded } = await benchDatabase();
/** sql/002's wake-up trigger as it was: the transaction id only. */
const WAKE_UP = `create function bt_wake() returns trigger language plpgsql as $$ begin
  perform pg_notify('bench_wake', pg_current_xact_id()::text); return null; end $$`;
const variants: Array<{ name: string; ddl: string; rowsInPayload?: boolean }> = [
  { name: 'no trigger (raw limit)', ddl: '' },
  {
    name: 'statement-level wake-up (sql/002)',
    ddl: `${WAKE_UP}; create trigger t after insert on bt for each statement execute function bt_wake()`,
  },
  {
    name: 'wake-up + xid guard (sluice before issue 12)',
    ddl: `${WAKE_UP}; create trigger t after insert on bt for each statement execute function bt_wake();
          create trigger g before insert on bt for each row when (new.xid is distinct from pg_current_xact_id()) execute function sluice_reading_new_version()`,
  },
  {
    name: 'per-row, JSON payload',
    ddl: `create function bt_row() returns trigger language plpgsql as $$ begin
            perform pg_notify('bench_row', json_build_object('id', new.id, 'slu_id', new.slu_id)::text); return null; end $$;
          create trigger t after insert on bt for each row execute function bt_row()`,
  },
  {
    name: 'statement-level, transition table',
    ddl: `create function bt_stmt() returns trigger language plpgsql as $$ begin
            perform pg_notify('bench_stmt', (select json_build_object('n', count(*), 'max_id', max(id))::text from new_rows)); return null; end $$;
          create trigger t after insert on bt referencing new table as new_rows for each statement execute function bt_stmt()`,
  },
  {
    // sluice_notify_rows() signs only rows of slu_reading (sql/015): the same function, made for bt.
    name: 'rows in the payload + xid guard (sluice, sql/014-015)',
    ddl: `create trigger g before insert on bt for each row when (new.xid is distinct from pg_current_xact_id()) execute function sluice_reading_new_version()`,
    rowsInPayload: true,
  },
];

const insertOf = (n: number) => `insert into bt (slu_id, p1, k1, a1, v1, v2, v3) select (random() * 1000)::int, random(), random() * 1000, random() * 50, 230, 231, 229 from generate_series(1, ${n})`;
const insertBulk = insertOf(BULK_ROWS);
const insertMid = insertOf(MID_ROWS);
const results: Array<[string, number, number, number]> = [];
const client = await pool.connect();
try {
  for (const v of variants) {
    await client.query('drop schema if exists bench_trigger cascade; create schema bench_trigger');
    await client.query('set search_path = bench_trigger, public');
    await client.query('create table bt (like public.slu_reading including all)'); // same defaults, identity and indexes
    if (v.ddl) await client.query(v.ddl);
    if (v.rowsInPayload) {
      const def = (await client.query<{ d: string }>(`select pg_get_functiondef('public.sluice_notify_rows'::regproc) as d`)).rows[0]?.d as string;
      const made = def.replace(/FUNCTION [\w."]*sluice_notify_rows\(\)/, 'FUNCTION bench_trigger.bt_rows()').replaceAll(`'slu_reading'::regclass`, `'bench_trigger.bt'::regclass`);
      if (made === def || !made.includes('bench_trigger.bt')) throw new Error('could not make bt_rows() from sluice_notify_rows()');
      await client.query(made);
      await client.query(`create trigger t after insert on bt referencing new table as new_rows for each statement execute function bt_rows()`);
    }
    await client.query(insertBulk); // warm up
    let t0 = performance.now();
    for (let i = 0; i < BULK_STATEMENTS; i++) await client.query(insertBulk);
    const bulkRate = (BULK_STATEMENTS * BULK_ROWS) / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    for (let i = 0; i < MID_STATEMENTS; i++) await client.query(insertMid);
    const midRate = (MID_STATEMENTS * MID_ROWS) / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    for (let i = 0; i < SINGLE; i++) await client.query('insert into bt (slu_id, p1, v1) values ($1, 0.9, 230)', [i % 1000]);
    const singleRate = SINGLE / ((performance.now() - t0) / 1000);
    results.push([v.name, bulkRate, midRate, singleRate]);
    await client.query('reset search_path');
  }
  await client.query('drop schema if exists bench_trigger cascade');
} finally {
  client.release();
}
const [, rawBulk, rawMid, rawSingle] = results[0] as [string, number, number, number];
printTable(
  ['trigger', 'bulk rows/s (1,000/statement)', 'vs raw', 'rows/s (100/statement)', 'vs raw', 'single-row inserts/s', 'vs raw'],
  results.map(([n, b, m, s]) => [
    n, fmt(b, 0), `${fmt((b / rawBulk) * 100, 0)}%`, fmt(m, 0), `${fmt((m / rawMid) * 100, 0)}%`, fmt(s, 0), `${fmt((s / rawSingle) * 100, 0)}%`,
  ]),
);
await pool.end();
await embedded?.close();
