import type pg from 'pg';
import { catchUpPage, streamRowKey, type HotFrom, type StreamRow } from '../db/since.ts';
import { formatPacked, keyId, keyXid, packedKey, PACKED_READING, readingT } from '../format/reading.ts';
import { aheadHas, aheadOf, type Ahead } from './ahead.ts';
import { SluiceError } from '../errors.ts';
import type { Cursor, HistoryCursor } from './cursor.ts';

/** A cursor catchUp resumes from (a history cursor goes through replayHistory first). */
export type ReplayCursor = Exclude<Cursor, HistoryCursor>;
import { formatSnapshot, parseSnapshot, type Snapshot } from './snapshot.ts';

export interface CatchUpOptions {
  /** Rows per page: at most this many rows of one replay are in memory at a time. */
  readonly pageRows: number;
  /** Cursors older than this (by sluice_xid_clock, sql/007) are refused with 4410, seconds. */
  readonly windowS: number;
  /** Where the hot partitions begin (PartitionMap.hotFrom); unset, every partition is read directly. */
  readonly hotFrom?: HotFrom;
  /** Aborted when the client goes away: the page being read is cancelled in PostgreSQL, no further page is read. */
  readonly signal: AbortSignal;
  /**
   * Hands one page over with the cursor that resumes right after it; the next page is read only once this
   * resolves (the page has left the process), so a replay holds one page, however slowly its client reads.
   */
  readonly send: (rows: StreamRow[], cursor: Cursor) => Promise<void>;
}

/** The replay's starting point, the data horizon and the window's edge, from one snapshot. */
const START_SQL = `select pg_current_snapshot()::text as now,
    (select purged_below::text from sluice_horizon) as purged,
    (select max(xid)::text from sluice_xid_clock where at <= now() - make_interval(secs => $1)) as edge,
    (select min(xid)::text from sluice_xid_clock) as oldest`;

/**
 * Replays, page by page, every reading (of `sluIds`, or all) committed after `from`, up to a snapshot Q taken
 * now, and returns Q: afterwards the client has everything visible in Q, and the live stream (filtered by Q)
 * carries on with no gap and no duplicate. Each page is handed to `send` with the cursor that resumes right
 * after it, so a client cut off mid-replay loses nothing either.
 *
 * `db` is a connection of its own (the replay pool's), so replays never take the REST API's connections, and
 * `canceller` (the main pool) sends pg_cancel_backend when the client goes away mid-query. Bounded: a cursor
 * ahead of the database (4400), below the retention horizon or outside the replay window (4410) is refused
 * before anything is scanned.
 */
export async function catchUp(db: pg.PoolClient, canceller: pg.Pool, from: ReplayCursor, sluIds: readonly number[] | null, opts: CatchUpOptions): Promise<Snapshot> {
  const now = await checkReplayStart(db, canceller, from.s, from.kind === 'paging' ? from.q : undefined, opts);
  // Rows the fast path delivered ahead of the cursor's snapshot are skipped (and named in every cursor sent until a
  // snapshot covers them). They committed before the cursor was written, so `now` must see them.
  const ahead = from.ahead;
  if (ahead) for (const xid of ahead.keys()) if (xid >= now.xmax) throw new SluiceError('SLUICE_ERR_CURSOR_INVALID', 'cursor is not from this database (it is ahead of it)');
  const first = from.s;
  let since = first;
  let upto = from.kind === 'paging' ? from.q : now;
  let after: [number, number] = from.kind === 'paging' ? [from.xid, from.id] : [0, 0];
  for (;;) {
    for (;;) {
      const rows = await cancellable(db, canceller, opts.signal, () => catchUpPage(db, { since, upto, after, sluIds, limit: opts.pageRows, ...(opts.hotFrom ? { hotFrom: opts.hotFrom } : {}) }));
      if (rows.length === 0) break;
      after = streamRowKey(rows.at(-1) as StreamRow);
      const done = rows.length < opts.pageRows;
      const fresh = skipAhead(rows, ahead);
      const cursor: ReplayCursor = done ? withAhead({ kind: 'settled', s: upto }, ahead) : withAhead({ kind: 'paging', s: since, q: upto, xid: after[0], id: after[1] }, ahead);
      // A page of nothing but rows sent ahead is not sent: the client's cursor already covers it.
      if (fresh.length > 0) await opts.send(fresh, cursor);
      if (done) break;
    }
    if (upto === now) return now;
    // A paging cursor was finished up to its own bound; now catch up from there to the present.
    since = upto;
    upto = now;
    after = [0, 0];
  }
}

function skipAhead(rows: StreamRow[], ahead: Ahead | undefined): StreamRow[] {
  if (!ahead) return rows;
  return rows.filter((r) => {
    const key = packedKey(r[0]);
    return !aheadHas(ahead, Number(keyXid(key)), Number(keyId(key)));
  });
}

/** `c` with the part of `ahead` its snapshot does not cover. */
function withAhead(c: ReplayCursor, ahead: Ahead | undefined): ReplayCursor {
  const left = aheadOf(ahead, c.s);
  return left ? { ...c, ahead: left } : c;
}

function query(db: pg.PoolClient, canceller: pg.Pool, signal: AbortSignal, text: string, values: unknown[]): Promise<pg.QueryResult> {
  return cancellable(db, canceller, signal, () => db.query(text, values));
}

/** Thrown when the replay was abandoned because its client went away. */
export class ReplayAborted extends Error {
  constructor() {
    super('replay abandoned: the client went away');
    this.name = 'ReplayAborted';
  }
}

/**
 * Runs one query on `db`; if `signal` aborts meanwhile, asks PostgreSQL to cancel it (the backend stops working
 * at once instead of finishing a scan nobody will read) and rejects with ReplayAborted.
 */
async function cancellable<T>(db: pg.PoolClient, canceller: pg.Pool, signal: AbortSignal, run: () => Promise<T>): Promise<T> {
  if (signal.aborted) throw new ReplayAborted();
  const pid = (db as unknown as { processID: number | null }).processID;
  const onAbort = () => {
    if (pid !== null) canceller.query('select pg_cancel_backend($1)', [pid]).catch(() => undefined);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await run();
    if (signal.aborted) throw new ReplayAborted();
    return result;
  } catch (err) {
    if (signal.aborted) throw new ReplayAborted();
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The checks before any replay scans: the snapshots are not ahead of this database (4400), not below the
 * retention horizon and not outside the replay window (4410). Returns the database's snapshot now.
 */
async function checkReplayStart(db: pg.PoolClient, canceller: pg.Pool, first: Snapshot, bound: Snapshot | undefined, opts: CatchUpOptions): Promise<Snapshot> {
  const start = (await query(db, canceller, opts.signal, START_SQL, [opts.windowS])).rows[0] as { now: string; purged: string | null; edge: string | null; oldest: string | null };
  const now = parseSnapshot(start.now);
  if (!now) throw new Error(`unexpected snapshot text from PostgreSQL: ${start.now}`);
  if (first.xmax > now.xmax || (bound && bound.xmax > now.xmax)) {
    throw new SluiceError('SLUICE_ERR_CURSOR_INVALID', 'cursor is not from this database (it is ahead of it)');
  }
  const horizon = Number(start.purged ?? 0);
  if (horizon > 0 && first.xmin <= horizon) {
    throw new SluiceError('SLUICE_ERR_CURSOR_EXPIRED', 'cursor is older than the data this database still holds; start without since and reload history with /time');
  }
  // By xmin, the oldest transaction the replay would read (rows "not visible in S" include S's in-progress ones):
  // a crafted "<old>:<now>:<old>" must not replay an old transaction. A paging cursor's q covers s, so its xmin
  // is no lower. The price: a cursor taken while some transaction older than the window was still open is refused
  // too (the replay would have had to read from that transaction on).
  if ((start.edge !== null && first.xmin <= Number(start.edge)) || (start.oldest !== null && first.xmin <= Number(start.oldest))) {
    throw new SluiceError('SLUICE_ERR_CURSOR_EXPIRED', `cursor is older than the replay window (${opts.windowS} s); start without since and reload history with /time`);
  }
  return now;
}

/** The next SLU below `below` that has readings (one index descent), for a history over every SLU. */
const NEXT_SLU_SQL = `select max(slu_id) as s from slu_reading where slu_id < $1`;
/** One page of one SLU's history: visible in q, t >= from, after (t, id), in time order (a backward index scan). */
const HISTORY_SQL = `select ${PACKED_READING} from slu_reading r
  where r.slu_id = $1 and r.t >= (to_timestamp($2) at time zone 'utc') and pg_visible_in_snapshot(r.xid, $3::pg_snapshot)
    and (r.t, r.id) > ($4::timestamp, $5::bigint)
  order by r.t, r.id limit $6`;

/**
 * A start from a time (from=, or a history cursor): every reading visible in the cursor's snapshot q with
 * t >= from, SLU by SLU (descending ids) and per SLU in time order, page by page with a cursor after each page;
 * then everything committed since q, as a settled cursor's catch-up. Returns where live delivery starts. The
 * history and the catch-up share q, so a reading is in exactly one of them; a writer whose transaction is open
 * across the start is not visible in q, so its rows come with the catch-up (or live), never twice.
 */
export async function replayHistory(db: pg.PoolClient, canceller: pg.Pool, h: HistoryCursor, sluIds: readonly number[] | null, opts: CatchUpOptions): Promise<Snapshot> {
  if (h.from < Date.now() / 1000 - opts.windowS) {
    throw new SluiceError('SLUICE_ERR_CURSOR_EXPIRED', `from is older than the replay window (${opts.windowS} s); read older history with /time`);
  }
  await checkReplayStart(db, canceller, h.q, undefined, opts);
  const list = sluIds ? [...sluIds].sort((a, b) => b - a) : null;
  let slu: number | undefined = h.after?.sluId;
  let after: [string, number] = h.after ? [h.after.t, h.after.id] : ['-infinity', 0];
  const nextSlu = async (below: number): Promise<number | undefined> => {
    if (list) return list.find((id) => id < below);
    const r = await query(db, canceller, opts.signal, NEXT_SLU_SQL, [below]);
    const s = (r.rows[0] as { s: number | null }).s;
    return s === null ? undefined : s;
  };
  if (slu === undefined) slu = await nextSlu(2_147_483_648);
  const snap = formatSnapshot(h.q);
  while (slu !== undefined) {
    const current: number = slu;
    const rows = (await cancellable(db, canceller, opts.signal, () =>
      db.query<[string]>({ rowMode: 'array', text: HISTORY_SQL, values: [current, h.from, snap, after[0], after[1], opts.pageRows] }),
    )).rows;
    const last = rows.at(-1);
    if (last) {
      const f = formatPacked(last[0]);
      after = [readingT(f.formatted), Number(f.id)];
      await opts.send(rows, { kind: 'history', from: h.from, q: h.q, after: { sluId: current, t: after[0], id: after[1] } });
    }
    if (rows.length < opts.pageRows) {
      slu = await nextSlu(current);
      after = ['-infinity', 0];
    }
  }
  return catchUp(db, canceller, { kind: 'settled', s: h.q }, sluIds, opts);
}
