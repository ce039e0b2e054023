import type pg from 'pg';
import { PACKED_READING, keyId, keyXid } from '../format/reading.ts';
import type { Ahead } from '../stream/ahead.ts';
import { formatSnapshot, parseSnapshot, type Snapshot } from '../stream/snapshot.ts';

/**
 * A reading as the stream reads it: PACKED_READING (values, slu_id, id and the writing transaction's xid in one
 * text column: the driver's cost is per column).
 */
export type StreamRow = [packed: string];

/** Where a stream row sorts: (xid, id), the order every feed read and catch-up page follows. */
export function streamRowKey(row: StreamRow): [xid: number, id: number] {
  return [Number(keyXid(row[0])), Number(keyId(row[0]))];
}

/**
 * The change counters, read in the same statement as the snapshot they belong to: readings (sql/006) and grants
 * (sql/008), as one text "<readings>/<grants>".
 */
const CHANGES = `((select seq::text from sluice_reading_changes) || '/' || (select seq::text from sluice_grant_changes))`;

/**
 * "Rows not visible in snapshot S" = xid >= xmax(S) or xid in xip(S). Every such xid is >= lowestUnseen(S), so
 * that bound is given as a plain value: the planner then walks slu_reading_xid_idx from it (a handful of
 * recent entries) instead of guessing at an opaque function of a parameter, which at 10 million rows chose a
 * full scan. These statements are unnamed, so each is planned with its actual values.
 */
const NOT_IN_S = `r.xid >= $1::xid8 and (r.xid >= $2::xid8 or r.xid = any($3::xid8[]))`;

function notInParams(s: Snapshot): [string, string, string[]] {
  const lowest = s.xip.length > 0 ? (s.xip[0] as number) : s.xmax;
  return [String(lowest), String(s.xmax), s.xip.map(String)];
}

/**
 * Where the hot partitions begin for a read from snapshot S (a timestamp, as text): rows at or after it are read
 * directly, rows before it only through the late notes of sql/010 (see PartitionMap). '-infinity' reads every
 * partition directly, which is always right, only slower.
 */
export type HotFrom = (since: Snapshot) => string;
const ALL_PARTITIONS: HotFrom = () => '-infinity';

/**
 * The rows of `NOT_IN_S`, first `limit` in (xid, id) order, in two parts that never overlap: hot partitions
 * (t >= hot, pruned when planned, so the read costs the same with 1 or 400 partitions) and the transactions noted
 * as having written before `hot` (sql/010), read by sluice_noted_rows (sql/011), which plans each one's t range
 * on its own. Each part is ordered and limited, so each is an index walk that stops early; with hot = -infinity
 * (every partition hot) there is no second part. `extra` narrows the direct part; `notedArgs` (the function's
 * optional arguments, as SQL) the noted one in the same way.
 */
function notInSRows(hot: string, hotParam: string, limitParam: string, extra = '', notedArgs = ''): string {
  if (hot === '-infinity') {
    return `select u.packed from (select ${PACKED_READING} as packed, r.xid, r.id from slu_reading r
      where r.t >= ${hotParam}::timestamp and ${NOT_IN_S} ${extra} order by r.xid, r.id limit ${limitParam}) u`;
  }
  // [hot, end of the last partition): the upper bound, read in this statement's snapshot, prunes the default
  // partition when the plan starts (its rows are all noted, and read through the notes).
  const direct = `select ${PACKED_READING} as packed, r.xid, r.id from slu_reading r
      where r.t >= ${hotParam}::timestamp and r.t < (select coalesce(max(p.hi), 'infinity') from sluice_partition p)
        and ${NOT_IN_S} ${extra} order by r.xid, r.id limit ${limitParam}`;
  // The function runs only when some noted transaction is new since S (one probe of the notes' key, evaluated
  // once before the scan): the usual read, with no late write, does not call it at all.
  const noted = `select ${PACKED_READING} as packed, r.xid, r.id
      from sluice_noted_rows($1::xid8, $2::xid8, $3::xid8[], ${hotParam}::timestamp, ${limitParam}::int${notedArgs}) r
      where exists (select 1 from sluice_reading_late l where l.xid >= $1::xid8 and (l.xid >= $2::xid8 or l.xid = any($3::xid8[])))`;
  return `select u.packed from ((${direct}) union all (${noted})) u order by u.xid, u.id limit ${limitParam}`;
}

/**
 * Rows the fast path already delivered (src/stream/ahead.ts), left out where the direct part reads them, so they
 * neither count toward the limit nor cross the wire again (the feed filters again: the noted part keeps them).
 */
const NOT_AHEAD = `and not exists (select 1 from unnest($6::xid8[], $7::bigint[], $8::bigint[]) a(x, lo, hi)
                   where r.xid = a.x and r.id between a.lo and a.hi)`;

function aheadParams(ahead: Ahead | undefined): [string[], string[], string[]] {
  const out: [string[], string[], string[]] = [[], [], []];
  for (const [xid, ranges] of ahead ?? []) {
    for (const [lo, hi] of ranges) {
      out[0].push(String(xid));
      out[1].push(String(lo));
      out[2].push(String(hi));
    }
  }
  return out;
}

/**
 * Everything committed since snapshot `since`, up to the statement's own snapshot, which is returned as the
 * new position: rows visible now but not in `since`. Exactly the rows of the transactions that committed in
 * between, whatever their id order. `limit` bounds one call; when it is hit, `complete` is false and the caller
 * must page with catchUpPage (the new snapshot is then the bound).
 */
export async function readSince(
  db: pg.Pool | pg.PoolClient,
  since: Snapshot,
  limit: number,
  opts: { prepared?: boolean; hotFrom?: HotFrom; ahead?: Ahead } = {},
): Promise<{ snapshot: Snapshot; changes: string; rows: StreamRow[]; complete: boolean }> {
  // The snapshot must come from the very statement that reads the rows (pg_current_snapshot() is the
  // statement's own snapshot): taken in a second query it could include commits this read did not see. The
  // left join keeps one row, carrying the snapshot, when nothing is new. The change counter comes from the same
  // snapshot, so an UPDATE/DELETE/TRUNCATE is seen in the very read whose rows it shaped.
  // Prepared (named) only on the feed's own connection, which runs with plan_cache_mode=force_custom_plan: parsed
  // once, planned with the actual bounds every time (a generic plan scanned 10M rows).
  const hot = (opts.hotFrom ?? ALL_PARTITIONS)(since);
  const res = await db.query<[string, string, string | null]>({
    // Two statements (with and without the noted part), so each prepared name has one text.
    ...(opts.prepared ? { name: hot === '-infinity' ? 'sluice_feed_read_all' : 'sluice_feed_read' } : {}),
    rowMode: 'array',
    text: `select s.snap, s.changes, r.packed from (select pg_current_snapshot()::text as snap, ${CHANGES} as changes) s
           left join lateral (
             ${notInSRows(hot, '$5', '$4', NOT_AHEAD)}
           ) r on true`,
    values: [...notInParams(since), limit + 1, hot, ...aheadParams(opts.ahead)],
  });
  const snapText = res.rows[0]?.[0] ?? '';
  const snapshot = parseSnapshot(snapText);
  if (!snapshot) throw new Error(`unexpected snapshot text from PostgreSQL: ${snapText}`);
  const changes = res.rows[0]?.[1] ?? '';
  const rows: StreamRow[] = [];
  for (const r of res.rows) if (r[2] !== null) rows.push([r[2]]);
  return rows.length > limit ? { snapshot, changes, rows: rows.slice(0, limit), complete: false } : { snapshot, changes, rows, complete: true };
}

/**
 * One page of a catch-up from `since` toward the fixed bound `upto`: rows not visible in `since`, visible in
 * `upto`, after (xid, id) = `after`, in (xid, id) order, optionally only for some SLUs.
 */
export async function catchUpPage(
  db: pg.Pool | pg.PoolClient,
  q: { since: Snapshot; upto: Snapshot; after: readonly [number, number]; sluIds: readonly number[] | null; limit: number; hotFrom?: HotFrom },
): Promise<StreamRow[]> {
  const extra = `and r.xid < $4::xid8 and pg_visible_in_snapshot(r.xid, $5::pg_snapshot)
             and (r.xid, r.id) > ($6::xid8, $7::bigint)
             ${q.sluIds ? 'and r.slu_id = any($10::int[])' : ''}`;
  const hot = (q.hotFrom ?? ALL_PARTITIONS)(q.since);
  const res = await db.query<StreamRow>({
    rowMode: 'array',
    text: notInSRows(hot, '$9', '$8', extra, `, $4::xid8, $5::pg_snapshot, $6::xid8, $7::bigint, ${q.sluIds ? '$10::int[]' : 'null'}`),
    values: [
      ...notInParams(q.since), String(q.upto.xmax), formatSnapshot(q.upto), String(q.after[0]), String(q.after[1]), q.limit,
      hot, ...(q.sluIds ? [q.sluIds] : []),
    ],
  });
  return res.rows;
}

/** The database's current snapshot (the starting point of a new feed or replay). */
export async function currentSnapshot(db: pg.Pool | pg.PoolClient): Promise<Snapshot> {
  return (await currentPosition(db)).snapshot;
}

/** The current snapshot and the change counter as of it (one statement). */
export async function currentPosition(db: pg.Pool | pg.PoolClient): Promise<{ snapshot: Snapshot; changes: string }> {
  const row = (await db.query<{ s: string; c: string }>(`select pg_current_snapshot()::text as s, ${CHANGES} as c`)).rows[0];
  const s = parseSnapshot(row?.s ?? '');
  if (!s) throw new Error(`unexpected snapshot text from PostgreSQL: ${row?.s}`);
  return { snapshot: s, changes: row?.c ?? '' };
}

/** The retention horizon: transactions below it may have rows deleted by sluice_prune(). */
export async function purgedBelow(db: pg.Pool | pg.PoolClient): Promise<number> {
  const r = await db.query<{ p: string | null }>('select (select purged_below::text from sluice_horizon) as p');
  return Number(r.rows[0]?.p ?? 0);
}
