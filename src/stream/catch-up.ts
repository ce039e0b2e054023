import type pg from 'pg';
import { catchUpPage, currentSnapshot, purgedBelow, streamRowKey, type StreamRow } from '../db/since.ts';
import { SluiceError } from '../errors.ts';
import type { Cursor } from './cursor.ts';
import type { Snapshot } from './snapshot.ts';

/**
 * Replays, page by page, every reading (of `sluIds`, or all) committed after `from`, up to a snapshot Q taken
 * now, and returns Q: afterwards the client has everything visible in Q, and the live stream (filtered by Q)
 * carries on with no gap and no duplicate. Each page is handed to `send` with the cursor that resumes right
 * after it, so a client cut off mid-replay loses nothing either.
 */
export async function catchUp(
  pool: pg.Pool,
  from: Cursor,
  sluIds: readonly number[] | null,
  pageRows: number,
  send: (rows: StreamRow[], cursor: Cursor) => void,
): Promise<Snapshot> {
  const now = await currentSnapshot(pool);
  const first = from.s;
  if (first.xmax > now.xmax || (from.kind === 'paging' && from.q.xmax > now.xmax)) {
    throw new SluiceError('SLUICE_ERR_CURSOR_INVALID', 'cursor is not from this database (it is ahead of it)');
  }
  const horizon = await purgedBelow(pool);
  if (horizon > 0 && first.xmin <= horizon) {
    throw new SluiceError('SLUICE_ERR_CURSOR_EXPIRED', 'cursor is older than the data this database still holds; start without since and reload history with /time');
  }
  let since = first;
  let upto = from.kind === 'paging' ? from.q : now;
  let after: [number, number] = from.kind === 'paging' ? [from.xid, from.id] : [0, 0];
  for (;;) {
    for (;;) {
      const rows = await catchUpPage(pool, { since, upto, after, sluIds, limit: pageRows });
      if (rows.length === 0) break;
      after = streamRowKey(rows.at(-1) as StreamRow);
      const done = rows.length < pageRows;
      send(rows, done ? { kind: 'settled', s: upto } : { kind: 'paging', s: since, q: upto, xid: after[0], id: after[1] });
      if (done) break;
    }
    if (upto === now) return now;
    // A paging cursor was finished up to its own bound; now catch up from there to the present.
    since = upto;
    upto = now;
    after = [0, 0];
  }
}
