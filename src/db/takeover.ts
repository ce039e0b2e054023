import pg from 'pg';

/**
 * Taking over slu_reading without stopping its writers (docs/operations.md, "Taking over a large legacy table").
 *
 * Two steps, each a series of short transactions so that a writer waits at most for one brief lock:
 *  1. prepareLegacyTable, before the migrations, on a table that has never seen sluice (no id column): the key
 *     columns are added without rewriting the table, ids are filled in batches, the indexes are built
 *     concurrently. Migration 001 would otherwise add them with a volatile default: a rewrite under an
 *     exclusive lock, writers stalled for all of it.
 *  2. partitionReadings, after the migrations, on any plain slu_reading (that legacy table, a sluice before
 *     partitioning, or a fresh install's empty table): a check on t is validated while writers go on, then one
 *     short transaction renames the table to slu_reading_legacy and attaches it, as it is, as the first partition
 *     of a new partitioned slu_reading ([MINVALUE, cutoff): no row is copied), with partitions ahead from the
 *     cutoff and a default partition.
 */

export interface TakeoverOptions {
  /** Partition width, seconds. */
  readonly widthS: number;
  /** Partitions made ahead of the current one. */
  readonly ahead: number;
  /** Table pages per batch when filling ids (step 1; ~100 rows a page). */
  readonly batchBlocks?: number;
  /** Longest wait for a lock before trying again (a writer queues behind a waiting ALTER, so keep it short). */
  readonly lockTimeoutMs?: number;
  readonly onProgress?: (msg: string, fields?: Record<string, unknown>) => void;
}

const LOCK_NOT_AVAILABLE = '55P03';

/**
 * A connection of its own for long maintenance (the takeover's validation, a partition's move): the pools' query
 * timeouts (PG_QUERY_TIMEOUT_MS, client and server side) would cut a scan of a big table halfway, and setting
 * them off on a pooled connection would hand it back to partners without them.
 */
export async function maintenanceClient(pool: pg.Pool): Promise<pg.Client> {
  const { query_timeout: _q, statement_timeout: _s, max: _m, idleTimeoutMillis: _i, ...options } = pool.options as pg.PoolConfig & Record<string, unknown>;
  const client = new pg.Client({ ...(options as pg.ClientConfig), application_name: 'sluice-maintenance' });
  client.on('error', () => undefined); // a lost connection fails the query in progress; nothing else to do
  await client.connect();
  return client;
}
const CHECK_VIOLATION = '23514';

/** Runs `fn` in a transaction with a short lock_timeout, again (with backoff) while a lock is not available. */
export async function withShortLocks<T>(c: pg.ClientBase, timeoutMs: number, fn: () => Promise<T>, attempts = 600): Promise<T> {
  for (let i = 1; ; i++) {
    await c.query('begin');
    try {
      await c.query(`set local lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
      const out = await fn();
      await c.query('commit');
      return out;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE || i >= attempts) throw err;
      // Writers queue behind a waiting lock request, so each attempt is short and the pause between them longer.
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * i) * (0.5 + Math.random())));
    }
  }
}

async function hasColumn(c: pg.ClientBase, column: string): Promise<boolean> {
  const r = await c.query(`select 1 from pg_attribute where attrelid = to_regclass('slu_reading') and attname = $1 and not attisdropped`, [column]);
  return r.rowCount === 1;
}

async function relkind(c: pg.ClientBase, name: string): Promise<string | null> {
  const r = await c.query<{ k: string }>(`select relkind::text as k from pg_class where oid = to_regclass($1)`, [name]);
  return r.rows[0]?.k ?? null;
}

/** CREATE INDEX CONCURRENTLY, dropping a half-built (invalid) one left by an interrupted attempt first. */
async function indexConcurrently(c: pg.ClientBase, name: string, def: string): Promise<void> {
  const r = await c.query<{ valid: boolean }>(`select i.indisvalid as valid from pg_index i where i.indexrelid = to_regclass($1)`, [name]);
  if (r.rows[0]?.valid === true) return;
  if (r.rows[0]) await c.query(`drop index concurrently ${name}`);
  await c.query(`create index concurrently ${name} ${def}`);
}

export const COVERING_INDEX_DEF = `on slu_reading (slu_id, t desc, id desc) include (xid, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3)`;

/** Step 1: a legacy table that has never seen sluice gets its keys online. Returns false when there was nothing to do. */
export async function prepareLegacyTable(c: pg.ClientBase, opts: TakeoverOptions): Promise<boolean> {
  if ((await relkind(c, 'slu_reading')) !== 'r' || (await hasColumn(c, 'id'))) return false;
  const lockMs = opts.lockTimeoutMs ?? 100;
  const say = opts.onProgress ?? (() => undefined);
  say('legacy table: adding id and xid without a rewrite');
  // Existing rows get xid '1' through the column's stored default (no rewrite): older than every snapshot, so
  // never streamed as new and visible to every history read. New rows get their own transaction's, in the same
  // transaction, so no writer ever sees the '1' default.
  await withShortLocks(c, lockMs, async () => {
    await c.query(`create sequence if not exists sluice_reading_id_seq`);
    await c.query(`alter table slu_reading add column xid xid8 not null default '1'`);
    await c.query(`alter table slu_reading alter column xid set default pg_current_xact_id()`);
    await c.query(`alter table slu_reading add column id bigint`);
    await c.query(`alter table slu_reading alter column id set default nextval('sluice_reading_id_seq')`);
  });
  // Every row written from here on has an id; the older ones are in the first `blocks` pages. Filled a batch of
  // pages at a time (a TID range scan each), every batch its own short transaction.
  const blocks = Number((await c.query<{ n: string }>(`select (pg_relation_size('slu_reading') / current_setting('block_size')::int)::text as n`)).rows[0]?.n ?? 0);
  const step = opts.batchBlocks ?? 2000;
  let filled = 0;
  for (let b = 0; b < blocks; b += step) {
    const r = await c.query(
      `update slu_reading set id = nextval('sluice_reading_id_seq') where ctid >= $1::tid and ctid < $2::tid and id is null`,
      [`(${b},0)`, `(${b + step},0)`],
    );
    filled += r.rowCount ?? 0;
    if ((b / step) % 50 === 0) say('legacy table: filling ids', { filled, page: b, pages: blocks });
  }
  // NOT NULL without a scan under lock: a check validated while writers go on lets SET NOT NULL skip its scan.
  await withShortLocks(c, lockMs, () => c.query(`alter table slu_reading add constraint sluice_id_not_null check (id is not null) not valid`));
  try {
    await c.query(`alter table slu_reading validate constraint sluice_id_not_null`);
  } catch {
    await c.query(`update slu_reading set id = nextval('sluice_reading_id_seq') where id is null`); // rows a concurrent move hid from the batches
    await c.query(`alter table slu_reading validate constraint sluice_id_not_null`);
  }
  await withShortLocks(c, lockMs, async () => {
    await c.query(`alter table slu_reading alter column id set not null`);
    await c.query(`alter table slu_reading drop constraint sluice_id_not_null`);
  });
  say('legacy table: building indexes concurrently', { filled });
  // The indexes migrations 001-006 would otherwise build under a write lock, built here without one.
  if ((await c.query(`select 1 from pg_constraint where conrelid = 'slu_reading'::regclass and contype = 'p'`)).rowCount === 0) {
    await c.query(`drop index concurrently if exists slu_reading_pkey`);
    await c.query(`create unique index concurrently slu_reading_pkey on slu_reading (id)`);
    await withShortLocks(c, lockMs, () => c.query(`alter table slu_reading add constraint slu_reading_pkey primary key using index slu_reading_pkey`));
  }
  await indexConcurrently(c, 'slu_reading_xid_idx', 'on slu_reading (xid, id)');
  await indexConcurrently(c, 'slu_reading_slu_t_v_idx', COVERING_INDEX_DEF);
  say('legacy table: ready for the migrations');
  return true;
}

/** The partition bound a takeover starts the new partitions at: the end of the current period, an hour away at least. */
const CUTOFF_SQL = `select to_char(c, 'YYYY-MM-DD HH24:MI:SS') as cutoff from (
    select date_bin(make_interval(secs => $1::float8), now() at time zone 'utc', timestamp '2000-01-01') + make_interval(secs => $1::float8) as c0) x,
    lateral (select case when c0 - (now() at time zone 'utc') < interval '1 hour' then c0 + make_interval(secs => $1::float8) else c0 end as c) y`;

/** Step 2: a plain slu_reading becomes the first partition of a partitioned one. Returns false if already partitioned. */
export async function partitionReadings(c: pg.ClientBase, opts: TakeoverOptions): Promise<boolean> {
  const kind = await relkind(c, 'slu_reading');
  if (kind !== 'r') return false;
  const lockMs = opts.lockTimeoutMs ?? 100;
  const say = opts.onProgress ?? (() => undefined);
  const cutoff = (await c.query<{ cutoff: string }>(CUTOFF_SQL, [opts.widthS])).rows[0]?.cutoff as string;
  say('partitioning slu_reading: checking the old table against the cutoff', { cutoff });
  // A row with t >= cutoff written while the check is validated would fail it; such rows wait aside (a writer's
  // clock ahead by more than a period) and are inserted right after the switch.
  await withShortLocks(c, lockMs, async () => {
    await c.query(`create table if not exists sluice_reading_overflow (like slu_reading including defaults)`);
    await c.query(`alter table sluice_reading_overflow alter column t drop not null`);
    await c.query(`drop trigger if exists sluice_takeover_overflow on slu_reading`);
    await c.query(`create trigger sluice_takeover_overflow before insert on slu_reading
      for each row when (new.t >= '${cutoff}'::timestamp or new.t is null) execute function sluice_takeover_overflow()`);
    await c.query(`alter table slu_reading drop constraint if exists sluice_legacy_bound`);
    await c.query(`alter table slu_reading add constraint sluice_legacy_bound check (t is not null and t < '${cutoff}'::timestamp) not valid`);
  });
  try {
    await validateAndSwitch(c, cutoff, lockMs, opts);
  } catch (err) {
    // Do not leave the aside trigger behind: past the cutoff it would divert every new reading out of sight.
    say('partitioning slu_reading failed; undoing the preparation', { err: (err as Error).message });
    await undoPreparation(c, lockMs).catch((e: Error) => say('could not undo the preparation', { err: e.message }));
    throw err;
  }
  await putBackAside(c, say);
  say('partitioning slu_reading: done', { cutoff });
  return true;
}

/** Rows set aside during a takeover go back (also after a takeover interrupted between the switch and this). */
export async function putBackAside(c: pg.ClientBase, say: (msg: string, fields?: Record<string, unknown>) => void = () => undefined): Promise<void> {
  if ((await relkind(c, 'sluice_reading_overflow')) === null || (await relkind(c, 'slu_reading')) !== 'p') return;
  await c.query('begin');
  try {
    await c.query(`create table if not exists sluice_reading_untimed as select * from sluice_reading_overflow where false`);
    const untimed = await c.query(`insert into sluice_reading_untimed select * from sluice_reading_overflow where t is null`);
    if (untimed.rowCount) say('partitioning slu_reading: rows without t kept aside in sluice_reading_untimed', { rows: untimed.rowCount });
    const moved = await c.query(`insert into slu_reading select * from sluice_reading_overflow where t is not null`);
    await c.query(`drop table sluice_reading_overflow`);
    await c.query('commit');
    if (moved.rowCount) say('partitioning slu_reading: rows written ahead of the cutoff moved in', { rows: moved.rowCount });
  } catch (err) {
    await c.query('rollback').catch(() => undefined);
    throw err;
  }
}

/** Back to the plain table as it was: no aside trigger, no bound check, the rows set aside returned. */
async function undoPreparation(c: pg.ClientBase, lockMs: number): Promise<void> {
  if ((await relkind(c, 'slu_reading')) !== 'r') return;
  await withShortLocks(c, lockMs, async () => {
    await c.query(`drop trigger if exists sluice_takeover_overflow on slu_reading`);
    await c.query(`alter table slu_reading drop constraint if exists sluice_legacy_bound`);
    if ((await relkind(c, 'sluice_reading_overflow')) !== null) {
      await c.query(`insert into slu_reading select * from sluice_reading_overflow`);
      await c.query(`drop table sluice_reading_overflow`);
    }
  });
}

async function validateAndSwitch(c: pg.ClientBase, cutoff: string, lockMs: number, opts: TakeoverOptions): Promise<void> {
  const say = opts.onProgress ?? (() => undefined);
  // Reads every row, but holds only SHARE UPDATE EXCLUSIVE: inserts go on.
  try {
    await c.query(`alter table slu_reading validate constraint sluice_legacy_bound`);
  } catch (err) {
    if ((err as { code?: string }).code !== CHECK_VIOLATION) throw err;
    // Rows no range partition can hold: t null (a legacy table without a default for t) or already past the
    // cutoff (a writer's clock ahead). They wait aside with the others: the latter go to their partition after
    // the switch, the former (a reading without a time is served by no endpoint) to sluice_reading_untimed.
    const moved = await c.query(`with m as (delete from slu_reading where t is null or t >= '${cutoff}'::timestamp returning *)
      insert into sluice_reading_overflow select * from m`);
    say('partitioning slu_reading: rows with no t or a t past the cutoff set aside', { rows: moved.rowCount });
    await c.query(`alter table slu_reading validate constraint sluice_legacy_bound`);
  }
  say('partitioning slu_reading: switching');
  await withShortLocks(c, lockMs, () => switchToPartitioned(c, cutoff, opts));
}

/** The switch itself, in one transaction holding the old table's lock for milliseconds (no row is read or copied). */
async function switchToPartitioned(c: pg.ClientBase, cutoff: string, opts: TakeoverOptions): Promise<void> {
  await c.query(`lock table slu_reading in access exclusive mode`);
  // Ids go on from where the old table's sequence ended (an identity column's sequence dies with the identity).
  await c.query(`create sequence if not exists sluice_reading_id_seq`);
  const own = (await c.query<{ s: string | null }>(`select pg_get_serial_sequence('slu_reading', 'id') as s`)).rows[0]?.s ?? null;
  if (own !== null && own !== 'public.sluice_reading_id_seq' && own !== 'sluice_reading_id_seq') {
    await c.query(`select setval('sluice_reading_id_seq', greatest((select last_value from ${own}), (select coalesce(max(id), 0) from slu_reading), 1))`);
  }
  const identity = (await c.query<{ i: string }>(`select attidentity::text as i from pg_attribute where attrelid = 'slu_reading'::regclass and attname = 'id'`)).rows[0]?.i;
  if (identity) await c.query(`alter table slu_reading alter column id drop identity if exists`);
  await c.query(`alter table slu_reading alter column id set default nextval('sluice_reading_id_seq')`);
  await c.query(`alter table slu_reading alter column t set not null`); // proved by the validated check: no scan
  await c.query(`alter table slu_reading rename to slu_reading_legacy`);
  const idx = await c.query<{ name: string }>(`select indexrelid::regclass::text as name from pg_index where indrelid = 'slu_reading_legacy'::regclass`);
  for (const { name } of idx.rows) {
    if (name.startsWith('slu_reading_')) await c.query(`alter index ${name} rename to ${('slu_reading_legacy_' + name.slice('slu_reading_'.length)).slice(0, 63)}`);
  }
  for (const t of ['sluice_reading_notify', 'sluice_reading_change', 'sluice_reading_truncate', 'sluice_reading_version', 'sluice_reading_own_xid', 'sluice_takeover_overflow']) {
    await c.query(`drop trigger if exists ${t} on slu_reading_legacy`);
  }
  await c.query(`create table slu_reading (like slu_reading_legacy including defaults) partition by range (t)`);
  // t is never null in a partition (the legacy one's validated check proves it, so no scan): a reading always
  // has a time, which every endpoint and the stream's partition bound rely on.
  await c.query(`alter table slu_reading alter column t set not null`);
  await c.query(`alter sequence sluice_reading_id_seq owned by slu_reading.id`); // so TRUNCATE ... RESTART IDENTITY restarts it
  // The writers' grants come along: whoever could insert into the old table can insert into the new one (and
  // draw its ids: sql/013 lets everyone use the sequence).
  const grants = await c.query<{ grantee: string; privs: string }>(
    `select a.grantee::regrole::text as grantee, string_agg(a.privilege_type, ', ') as privs
     from pg_class cl, aclexplode(cl.relacl) a where cl.oid = 'slu_reading_legacy'::regclass and a.grantee <> cl.relowner and a.grantee <> 0
     group by a.grantee
     union all
     select 'public', string_agg(a.privilege_type, ', ') from pg_class cl, aclexplode(cl.relacl) a
     where cl.oid = 'slu_reading_legacy'::regclass and a.grantee = 0 having count(*) > 0`,
  );
  for (const g of grants.rows) await c.query(`grant ${g.privs} on slu_reading to ${g.grantee === 'public' ? 'public' : g.grantee}`);
  await c.query(`grant usage on sequence sluice_reading_id_seq to public`);
  await c.query(`create index slu_reading_xid_idx on slu_reading (xid, id)`);
  await c.query(`create index slu_reading_slu_t_v_idx ${COVERING_INDEX_DEF}`);
  // An empty old table (a fresh install) is not kept: partitions start at the period holding now, and anything
  // older goes to the default partition until someone adds partitions for it (npm run db -- partitions --from).
  // A non-empty one is attached as it is, using the validated check: no scan; its indexes are the same as the
  // new ones and become their partitions (no build).
  const empty = (await c.query(`select not exists (select 1 from slu_reading_legacy) as e`)).rows[0]?.e === true;
  let first = cutoff;
  if (empty) {
    await c.query(`drop table slu_reading_legacy`);
    first = (await c.query<{ lo: string }>(
      `select to_char(date_bin(make_interval(secs => $1::float8), now() at time zone 'utc', timestamp '2000-01-01'), 'YYYY-MM-DD HH24:MI:SS') as lo`,
      [opts.widthS],
    )).rows[0]?.lo as string;
  } else {
    await c.query(`alter table slu_reading attach partition slu_reading_legacy for values from (minvalue) to ('${cutoff}')`);
    await c.query(`insert into sluice_partition (name, lo, hi) values ('slu_reading_legacy', null, $1) on conflict (name) do nothing`, [cutoff]);
  }
  await c.query(`create table slu_reading_default partition of slu_reading default`);
  await c.query(`create trigger sluice_reading_late after insert or update on slu_reading_default for each row execute function sluice_note_late()`);
  await c.query(`select sluice_install_reading_triggers()`);
  await c.query(`select sluice_install_partition_triggers('slu_reading_default')`);
  if (!empty) await c.query(`select sluice_install_partition_triggers('slu_reading_legacy')`);
  for (let i = 0; i <= opts.ahead; i++) {
    await c.query(`select sluice_add_partition($1::timestamp + make_interval(secs => $2::float8 * $3::int), $1::timestamp + make_interval(secs => $2::float8 * ($3::int + 1)))`, [first, opts.widthS, i]);
  }
}
