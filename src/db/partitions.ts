import type pg from 'pg';
import type { Logger } from 'pino';
import { maintenanceClient, withShortLocks } from './takeover.ts';

/** What the partition maintenance needs to know (from PARTITION_* and RETENTION). */
export interface PartitionPolicy {
  readonly widthS: number;
  readonly ahead: number;
  readonly coldAfterS: number;
  /** Drop partitions whose end is older than this; undefined keeps everything. */
  readonly retentionS?: number;
  /** Late notes older than the replay window are of no use to any cursor (they are refused with 4410). */
  readonly replayWindowS: number;
  /** "Now" as a timestamp literal (UTC); tests move it. Default: the database's clock. */
  readonly now?: string;
  readonly lockTimeoutMs?: number;
}

export interface MaintenanceReport {
  readonly created: string[];
  readonly cold: string[];
  readonly dropped: { name: string; rows: number }[];
  /** Rows deleted from the default partition (t past the retention, written there late). */
  readonly defaultRowsDeleted: number;
}

/** Arbitrary but fixed: one maintainer at a time across every gateway. */
const MAINTENANCE_LOCK = 0x51_75_1c_e1;

const NOW = (p: PartitionPolicy) => (p.now ? `'${p.now.replace(/'/g, '')}'::timestamp` : `(now() at time zone 'utc')`);

/**
 * One round of partition upkeep: partitions made ahead, partitions past their time turned cold, and with a
 * RETENTION partitions past it dropped whole (no DELETE: no dead rows, no vacuum debt, almost no WAL). Each step is
 * its own short transaction with a short lock timeout (retried), so writers wait milliseconds at most. Returns
 * undefined when another process holds the maintenance lock, or slu_reading is not partitioned yet.
 */
export async function maintainPartitions(pool: pg.Pool, policy: PartitionPolicy): Promise<MaintenanceReport | undefined> {
  const c = await maintenanceClient(pool);
  try {
    const locked = (await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [MAINTENANCE_LOCK])).rows[0]?.ok;
    if (!locked) return undefined;
    try {
      const kind = (await c.query<{ k: string | null }>(`select (select relkind::text from pg_class where oid = to_regclass('slu_reading')) as k`)).rows[0]?.k;
      if (kind !== 'p') return undefined;
      return await maintainOnce(c, policy);
    } finally {
      await c.query('select pg_advisory_unlock($1)', [MAINTENANCE_LOCK]).catch(() => undefined);
    }
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function maintainOnce(c: pg.ClientBase, p: PartitionPolicy): Promise<MaintenanceReport> {
  const lockMs = p.lockTimeoutMs ?? 100;
  const report = { created: [] as string[], cold: [] as string[], dropped: [] as { name: string; rows: number }[], defaultRowsDeleted: 0 };
  const now = NOW(p);
  // 1. Ahead: contiguous from the newest partition's end until `ahead` periods past now. After a stop so long
  //    that no partition holds now, the next one starts at the next period (on the old grid) instead of filling
  //    the gap: the rows written meanwhile stay in the default partition (noted, so the stream has them; retention
  //    deletes them in time), and no partition is made over a backlog that would have to move under a lock.
  for (let guard = 0; guard < 10_000; guard++) {
    const r = await c.query<{ lo: string; hi: string; need: boolean }>(
      `select to_char(lo, 'YYYY-MM-DD HH24:MI:SS') as lo, to_char(lo + w, 'YYYY-MM-DD HH24:MI:SS') as hi, lo < ${now} + w * $2 as need
       from (select make_interval(secs => $1::float8) as w, max(hi) as top from sluice_partition) x,
       lateral (select case when top >= ${now} then top else date_bin(w, ${now}, top) + w end as lo) y`,
      [p.widthS, p.ahead],
    );
    const next = r.rows[0];
    if (!next?.need) break;
    const name = await withShortLocks(c, lockMs, async () => (await c.query<{ n: string | null }>('select sluice_add_partition($1, $2) as n', [next.lo, next.hi])).rows[0]?.n);
    if (!name) break;
    report.created.push(name);
  }
  // 2. Cold: partitions whose end is more than PARTITION_COLD_AFTER past.
  const cold = await c.query<{ name: string }>(
    `select name from sluice_partition where cold_xid is null and hi <= ${now} - make_interval(secs => $1::float8) order by hi`,
    [p.coldAfterS],
  );
  for (const { name } of cold.rows) {
    await withShortLocks(c, lockMs, () => c.query('select sluice_mark_cold($1)', [name]));
    report.cold.push(name);
  }
  // 3. Retention: whole partitions past it, oldest first; then rows the default partition holds past it.
  if (p.retentionS !== undefined) {
    const old = await c.query<{ name: string }>(
      `select name from sluice_partition where hi <= ${now} - make_interval(secs => $1::float8) order by hi`,
      [p.retentionS],
    );
    for (const { name } of old.rows) {
      const rows = await withShortLocks(c, lockMs, async () => Number((await c.query<{ n: string }>('select sluice_drop_partition($1)::text as n', [name])).rows[0]?.n ?? 0));
      report.dropped.push({ name, rows });
    }
    const gone = await withShortLocks(c, lockMs, () =>
      c.query<{ n: string; top: string | null }>(
        `with gone as (delete from slu_reading_default where t < ${now} - make_interval(secs => $1::float8) returning xid),
              s as (select count(*) as n, max(xid) as top from gone),
              h as (insert into sluice_horizon (purged_below) select top from s where top is not null
                      on conflict (only_row) do update set purged_below = greatest(sluice_horizon.purged_below, excluded.purged_below)),
              b as (update sluice_reading_changes set seq = seq + 1 where (select n from s) > 0)
         select n::text, top::text from s`,
        [p.retentionS],
      ),
    );
    report.defaultRowsDeleted = Number(gone.rows[0]?.n ?? 0);
    if (report.defaultRowsDeleted > 0) await c.query(`select pg_notify('sluice_reading_change', 'delete')`);
  }
  // 4. Late notes no cursor can need any more (older than the replay window's edge, sql/007).
  await c.query(
    `delete from sluice_reading_late where xid < (select max(xid) from sluice_xid_clock where at <= now() - make_interval(secs => $1::float8))`,
    [p.replayWindowS],
  );
  return report;
}

/** Runs maintainPartitions now and every `everyMs`; errors are logged and retried at the next round. */
export function startPartitionMaintenance(pool: pg.Pool, policy: PartitionPolicy, log: Logger, everyMs: number, after?: () => void): { close(): void; runNow(): Promise<void> } {
  let running: Promise<void> | undefined;
  const run = (): Promise<void> => {
    running ??= maintainPartitions(pool, policy)
      .then((r) => {
        if (r && (r.created.length || r.cold.length || r.dropped.length || r.defaultRowsDeleted)) log.info({ partitions: r }, 'partition maintenance');
        after?.();
      })
      .catch((err: Error) => log.warn({ err: err.message }, 'partition maintenance failed; retrying at the next round'))
      .finally(() => (running = undefined));
    return running;
  };
  void run();
  const timer = setInterval(() => void run(), everyMs);
  timer.unref();
  return { close: () => clearInterval(timer), runNow: run };
}

/**
 * Partitions for the past, from `from` up to the oldest partition, on its grid: for an import of old readings or
 * a benchmark's history (rows already in the default partition move in with their id, xid and values). Refused
 * while the legacy partition of a takeover still covers everything before its cutoff.
 */
export async function addPartitionsFrom(pool: pg.Pool, from: string, widthS: number, lockTimeoutMs = 100): Promise<string[]> {
  const c = await maintenanceClient(pool);
  try {
    const r = await c.query<{ legacy: boolean; oldest: string | null; first: string | null }>(
      `select exists (select 1 from sluice_partition where lo is null) as legacy,
              to_char(min(lo), 'YYYY-MM-DD HH24:MI:SS') as oldest,
              to_char(date_bin(make_interval(secs => $2::float8), $1::timestamp, min(lo)), 'YYYY-MM-DD HH24:MI:SS') as first
       from sluice_partition`,
      [from, widthS],
    );
    const row = r.rows[0];
    if (row?.legacy) throw new Error('the legacy partition of the takeover covers every time before its cutoff; it goes with the retention');
    if (!row?.oldest || !row.first) throw new Error('slu_reading is not partitioned yet (run the migrations)');
    const made: string[] = [];
    for (let lo = row.first; lo < row.oldest; ) {
      const hi = (await c.query<{ hi: string }>(`select to_char(least($1::timestamp + make_interval(secs => $2::float8), $3::timestamp), 'YYYY-MM-DD HH24:MI:SS') as hi`, [lo, widthS, row.oldest])).rows[0]?.hi as string;
      // Made cold at once, in the same transaction: older than every partition the stream's maps know, it must be
      // read through notes from its first write (a map would take it for hot only once refreshed).
      const name = await withShortLocks(c, lockTimeoutMs, async () => {
        const n = (await c.query<{ n: string | null }>('select sluice_add_partition($1, $2) as n', [lo, hi])).rows[0]?.n;
        if (n) await c.query('select sluice_mark_cold($1)', [n]);
        return n;
      });
      if (name) made.push(name);
      lo = hi;
    }
    return made;
  } finally {
    await c.end().catch(() => undefined);
  }
}
