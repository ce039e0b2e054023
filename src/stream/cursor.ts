import { decodeAhead, encodeAhead, type Ahead } from './ahead.ts';
import { covers, formatSnapshot, parseSnapshot, visibleIn, type Snapshot } from './snapshot.ts';

/**
 * The opaque resume cursor. Two forms, both valid on any gateway process of the same database:
 *  - settled: "everything visible in snapshot S has been delivered";
 *  - paging:  during a catch-up from S toward Q: "everything visible in S, plus the rows visible in Q but not in
 *             S up to (xid, id) in catch-up order". Resuming continues that catch-up exactly where it stopped.
 * Either may carry `ahead` (src/stream/ahead.ts): rows of transactions S does not see that the fast path already
 * delivered from their NOTIFY payload; a resume skips exactly those.
 * Encoded as "c1." + base64url(JSON) so it survives URLs unescaped.
 */
export type Cursor =
  | { readonly kind: 'settled'; readonly s: Snapshot; readonly ahead?: Ahead }
  | { readonly kind: 'paging'; readonly s: Snapshot; readonly q: Snapshot; readonly xid: number; readonly id: number; readonly ahead?: Ahead }
  | HistoryCursor;

/**
 * A start from a time (`from=`): "of the readings visible in snapshot q with t >= from, those up to `after` in
 * history order (slu_id descending, then t, id ascending: per SLU in time order) have been delivered". Resuming
 * continues the history after that position, then catches up from q like a settled cursor: the history and the
 * live position come from the one snapshot q, so the seam has no gap and no duplicate.
 */
export interface HistoryCursor {
  readonly kind: 'history';
  /** Unix seconds: readings with t >= from. */
  readonly from: number;
  readonly q: Snapshot;
  /** The last reading sent (its SLU, legacy t text and id), or undefined before the first. */
  readonly after?: { readonly sluId: number; readonly t: string; readonly id: number };
}

/** from= values a history may start at: years 1 to 9999 (what PostgreSQL's timestamp and the legacy t print). */
export const FROM_MIN = -62_135_596_800;
export const FROM_MAX = 253_402_300_799;

const PREFIX = 'c1.';
/** Cursors longer than this are refused (a snapshot with thousands of in-progress transactions is not one). */
export const MAX_CURSOR_LENGTH = 16_384;

export function encodeCursor(c: Cursor): string {
  const body =
    c.kind === 'settled'
      ? c.ahead && c.ahead.size > 0 ? { s: formatSnapshot(c.s), f: encodeAhead(c.ahead) } : { s: formatSnapshot(c.s) }
      : c.kind === 'paging'
        ? { s: formatSnapshot(c.s), q: formatSnapshot(c.q), x: c.xid, i: c.id, ...(c.ahead && c.ahead.size > 0 ? { f: encodeAhead(c.ahead) } : {}) }
        : c.after
          ? { h: c.from, q: formatSnapshot(c.q), a: c.after.sluId, t: c.after.t, i: c.after.id }
          : { h: c.from, q: formatSnapshot(c.q) };
  return PREFIX + Buffer.from(JSON.stringify(body)).toString('base64url');
}

/**
 * Most in-progress transaction ids a cursor's snapshot may list. A real one lists the transactions open at that
 * moment (at most max_connections + max_prepared_transactions). MAX_CURSOR_LENGTH alone keeps it under about
 * 2,700 (distinct ids take 2 to 17 characters each); this bounds the work of checking and querying with one
 * whatever that length becomes.
 */
export const MAX_CURSOR_XIP = 4096;

/**
 * Decodes a cursor from a client; undefined when it is not one this gateway could have written. Never throws,
 * never asks the database: everything that decodes is safe to query with (PostgreSQL accepts its snapshots, and
 * its numbers fit xid8, bigint and a JavaScript number), so a crafted cursor is refused here (4400) rather than
 * failing a query later (which closed with 1011). Whether it is from *this* database is decided by catch-up.
 */
export function decodeCursor(text: string): Cursor | undefined {
  if (typeof text !== 'string' || !text.startsWith(PREFIX) || text.length > MAX_CURSOR_LENGTH) return undefined;
  const b64 = text.slice(PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(b64)) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const c = cursorOf(body);
  // Only the exact text encodeCursor writes: no other key order, spacing, number spelling, duplicate key or
  // base64 variant. A cursor is opaque; a client has no reason to send anything but what it was given.
  return c && encodeCursor(c) === text ? c : undefined;
}

function cursorOf(body: unknown): Cursor | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const o = body as Record<string, unknown>;
  const keys = Object.keys(o).length;
  if ('h' in o) return historyOf(o, keys);
  const s = snapshotOf(o.s);
  if (!s) return undefined;
  let ahead: Ahead | undefined;
  if ('f' in o) {
    ahead = decodeAhead(o.f, s);
    if (!ahead) return undefined;
  }
  const fixed = keys - (ahead ? 1 : 0);
  if (fixed === 1) return ahead ? { kind: 'settled', s, ahead } : { kind: 'settled', s };
  if (fixed !== 4) return undefined;
  const q = snapshotOf(o.q);
  const xid = o.x;
  const id = o.i;
  if (!q || !isNonNegativeSafeInteger(xid) || !isNonNegativeSafeInteger(id)) return undefined;
  // A paging cursor is "s, plus what q sees that s does not, up to (x, i)": q is a later snapshot than s, and
  // x is the transaction of a row the catch-up sent, so one q sees and s does not.
  if (!covers(q, s) || !visibleIn(xid, q) || visibleIn(xid, s)) return undefined;
  return ahead ? { kind: 'paging', s, q, xid, id, ahead } : { kind: 'paging', s, q, xid, id };
}

function snapshotOf(v: unknown): Snapshot | undefined {
  if (typeof v !== 'string') return undefined;
  const s = parseSnapshot(v);
  return s && s.xip.length <= MAX_CURSOR_XIP ? s : undefined;
}

function isNonNegativeSafeInteger(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

const LEGACY_T = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.\d{6}$/;

function historyOf(o: Record<string, unknown>, keys: number): HistoryCursor | undefined {
  const from = o.h;
  const q = snapshotOf(o.q);
  if (!q || !Number.isSafeInteger(from) || (from as number) < FROM_MIN || (from as number) > FROM_MAX) return undefined;
  if (keys === 2) return { kind: 'history', from: from as number, q };
  if (keys !== 5) return undefined;
  const { a, t, i } = o;
  if (!Number.isSafeInteger(a) || (a as number) < 0 || (a as number) > 2_147_483_647 || !isNonNegativeSafeInteger(i) || typeof t !== 'string') return undefined;
  // A real date of years 1-9999 (Date knows year 0 and 31 February does not exist): PostgreSQL must accept it.
  const m = LEGACY_T.exec(t);
  if (!m || m[1] === '0000') return undefined;
  const d = new Date(`${t.slice(0, 10)}T${t.slice(11, 19)}Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== `${t.slice(0, 10)}T${t.slice(11, 19)}`) return undefined;
  return { kind: 'history', from: from as number, q, after: { sluId: a as number, t, id: i as number } };
}
