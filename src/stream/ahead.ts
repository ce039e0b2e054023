import { visibleIn, type Snapshot } from './snapshot.ts';

/**
 * Readings delivered ahead of a cursor's snapshot: the fast path (sql/014) delivers a committed transaction's rows
 * from its NOTIFY payload before any read's snapshot includes that transaction. A cursor then says "everything
 * visible in S, plus these (xid, id)": per transaction not visible in S, the ids sent, as inclusive ranges
 * (a statement's ids are mostly consecutive). A read from S skips exactly these rows. (xid, id) names one row
 * version: every cache and every paging mark of the stream already relies on it (docs/stream.md).
 */
export type Ahead = ReadonlyMap<number, ReadonlyArray<readonly [number, number]>>;

/** At most this many transactions and id ranges are carried: a cursor stays short (it is in every frame). */
export const MAX_AHEAD_XIDS = 8;
export const MAX_AHEAD_RANGES = 16;

export function aheadHas(a: Ahead | undefined, xid: number, id: number): boolean {
  const ranges = a?.get(xid);
  if (!ranges) return false;
  for (const [lo, hi] of ranges) if (id >= lo && id <= hi) return true;
  return false;
}

export function aheadRanges(a: Ahead): number {
  let n = 0;
  for (const r of a.values()) n += r.length;
  return n;
}

/**
 * Adds the ids lo..hi of transaction `xid` in place, merging with an adjacent range. The fast path adds one range
 * per payload chunk: the span of its ids. A chunk carries every row of its statement within that span, and a
 * transaction's statements draw ascending ids from the sequence, so no other row of `xid` lies inside it, however
 * other writers' ids interleave. Results: 'added'; 'seen' (the span is already there: a chunk NOTIFYed again);
 * 'overlap' (part of it is there: not the sequence's ids; nothing changed); 'full' (over the bounds; nothing
 * changed). Ranges stay ascending and disjoint, so the encoding is canonical.
 */
export function aheadAdd(a: Map<number, Array<[number, number]>>, xid: number, lo: number, hi: number): 'added' | 'seen' | 'overlap' | 'full' {
  const ranges = a.get(xid);
  if (!ranges) {
    if (a.size >= MAX_AHEAD_XIDS || aheadRanges(a) >= MAX_AHEAD_RANGES) return 'full';
    a.set(xid, [[lo, hi]]);
    return 'added';
  }
  let i = 0;
  while (i < ranges.length && (ranges[i] as [number, number])[1] < lo - 1) i++;
  const at = ranges[i];
  if (at && at[0] <= lo && at[1] >= hi) return 'seen';
  if (at && at[0] <= hi && at[1] >= lo) return 'overlap';
  const touchesAt = at !== undefined && at[0] === hi + 1;
  const touchesPrev = at !== undefined && at[1] === lo - 1; // `at` ends right before lo
  if (touchesPrev) {
    const next = ranges[i + 1];
    if (next && next[0] <= hi) return 'overlap';
    at[1] = hi;
    if (next && next[0] === hi + 1) {
      at[1] = next[1];
      ranges.splice(i + 1, 1);
    }
    return 'added';
  }
  if (touchesAt) {
    at[0] = lo;
    return 'added';
  }
  if (aheadRanges(a) >= MAX_AHEAD_RANGES) return 'full';
  ranges.splice(i, 0, [lo, hi]);
  return 'added';
}

/** A copy without the transactions `s` sees (a read from s skips them anyway); undefined when nothing is left. */
export function aheadOf(a: Ahead | undefined, s: Snapshot): Ahead | undefined {
  if (!a || a.size === 0) return undefined;
  const out = new Map<number, ReadonlyArray<readonly [number, number]>>();
  for (const [xid, ranges] of [...a].sort((x, y) => x[0] - y[0])) {
    if (!visibleIn(xid, s)) out.set(xid, ranges.map(([lo, hi]) => [lo, hi] as const));
  }
  return out.size > 0 ? out : undefined;
}

/** The cursor's form: [[xid, lo, hi, lo, hi, ...], ...], ascending by xid. */
export function encodeAhead(a: Ahead): number[][] {
  return [...a].sort((x, y) => x[0] - y[0]).map(([xid, ranges]) => [xid, ...ranges.flat()]);
}

/**
 * The inverse of encodeAhead for a cursor from a client, checked against its snapshot `s`: undefined unless it is
 * what a gateway could have written (bounded, ascending, disjoint, every transaction one `s` does not see).
 */
export function decodeAhead(v: unknown, s: Snapshot): Ahead | undefined {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_AHEAD_XIDS) return undefined;
  const out = new Map<number, Array<readonly [number, number]>>();
  let ranges = 0;
  let lastXid = -1;
  for (const e of v) {
    if (!Array.isArray(e) || e.length < 3 || e.length % 2 !== 1 || !e.every(isNonNegativeSafeInteger)) return undefined;
    const [xid, ...flat] = e as number[];
    if ((xid as number) <= lastXid || visibleIn(xid as number, s)) return undefined;
    lastXid = xid as number;
    const list: Array<readonly [number, number]> = [];
    for (let i = 0; i < flat.length; i += 2) {
      const lo = flat[i] as number;
      const hi = flat[i + 1] as number;
      const prev = list.at(-1);
      if (lo > hi || (prev && lo <= prev[1] + 1)) return undefined;
      list.push([lo, hi]);
    }
    ranges += list.length;
    if (ranges > MAX_AHEAD_RANGES) return undefined;
    out.set(xid as number, list);
  }
  return out;
}

function isNonNegativeSafeInteger(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}
