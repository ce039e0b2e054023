import type pg from 'pg';
import { catchUpPage, streamRowKey, type StreamRow } from '../db/since.ts';
import { SluiceError } from '../errors.ts';
import type { Cursor } from './cursor.ts';
import { parseSnapshot, type Snapshot } from './snapshot.ts';

export interface CatchUpOptions {
  /** Rows per page: at most this many rows of one replay are in memory at a time. */
  readonly pageRows: number;
  /** Cursors older than this (by sluice_xid_clock, sql/007) are refused with 4410, seconds. */
  readonly windowS: number;
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
export async function catchUp(db: pg.PoolClient, canceller: pg.Pool, from: Cursor, sluIds: readonly number[] | null, opts: CatchUpOptions): Promise<Snapshot> {
  const start = (await query(db, canceller, opts.signal, START_SQL, [opts.windowS])).rows[0] as { now: string; purged: string | null; edge: string | null; oldest: string | null };
  const now = parseSnapshot(start.now);
  if (!now) throw new Error(`unexpected snapshot text from PostgreSQL: ${start.now}`);
  const first = from.s;
  if (first.xmax > now.xmax || (from.kind === 'paging' && from.q.xmax > now.xmax)) {
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
  let since = first;
  let upto = from.kind === 'paging' ? from.q : now;
  let after: [number, number] = from.kind === 'paging' ? [from.xid, from.id] : [0, 0];
  for (;;) {
    for (;;) {
      const rows = await cancellable(db, canceller, opts.signal, () => catchUpPage(db, { since, upto, after, sluIds, limit: opts.pageRows }));
      if (rows.length === 0) break;
      after = streamRowKey(rows.at(-1) as StreamRow);
      const done = rows.length < opts.pageRows;
      await opts.send(rows, done ? { kind: 'settled', s: upto } : { kind: 'paging', s: since, q: upto, xid: after[0], id: after[1] });
      if (done) break;
    }
    if (upto === now) return now;
    // A paging cursor was finished up to its own bound; now catch up from there to the present.
    since = upto;
    upto = now;
    after = [0, 0];
  }
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
