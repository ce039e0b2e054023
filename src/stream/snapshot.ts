/**
 * PostgreSQL snapshots (pg_snapshot, "xmin:xmax:xip,...") in JavaScript, so the hub can decide which rows a
 * client has already seen without asking the database. A transaction id is visible in a snapshot when it
 * committed before the snapshot was taken: xid < xmin, or xid < xmax and not in xip. xid8 values are 64-bit
 * but far below 2^53 in practice (epoch * 2^32 + xid), so they are kept as numbers.
 */
export interface Snapshot {
  readonly xmin: number;
  readonly xmax: number;
  /** In-progress transaction ids at snapshot time, ascending. */
  readonly xip: readonly number[];
}

/** Decimal without leading zeros (the only form PostgreSQL prints), at most 16 digits (2^53 has 16). */
const XID = '(?:0|[1-9]\\d{0,15})';
const SNAPSHOT = new RegExp(`^(${XID}):(${XID}):((?:${XID}(?:,${XID})*)?)$`);

/**
 * Parses pg_snapshot's text form; undefined unless it is one PostgreSQL accepts (checked against a server in
 * cursor-fuzz.test.ts): valid xmin <= xmax, in-progress ids ascending, distinct, in [xmin, xmax), in the form
 * PostgreSQL prints it, and every id a safe integer (xid8 goes to 2^64, JavaScript numbers only to 2^53).
 */
export function parseSnapshot(text: string): Snapshot | undefined {
  const m = SNAPSHOT.exec(text);
  if (!m) return undefined;
  const xmin = Number(m[1]);
  const xmax = Number(m[2]);
  const xip = m[3] ? (m[3] as string).split(',').map(Number) : [];
  if (!(xmin <= xmax) || xip.some((x, i) => x < xmin || x >= xmax || (i > 0 && x <= (xip[i - 1] as number)))) return undefined;
  if (xmax > Number.MAX_SAFE_INTEGER || !validXid(xmin) || !validXid(xmax)) return undefined;
  return { xmin, xmax, xip };
}

/**
 * PostgreSQL refuses an xmin or xmax whose 32-bit transaction id (xid8 is epoch * 2^32 + xid) is 0,
 * InvalidTransactionId: 0, 2^32, 2 * 2^32... In-progress ids are only checked to lie between the two.
 */
function validXid(x: number): boolean {
  return x % 2 ** 32 !== 0;
}

export function formatSnapshot(s: Snapshot): string {
  return `${s.xmin}:${s.xmax}:${s.xip.join(',')}`;
}

/** Did transaction `xid` commit before snapshot `s` (as PostgreSQL's pg_visible_in_snapshot)? */
export function visibleIn(xid: number, s: Snapshot): boolean {
  if (xid < s.xmin) return true;
  if (xid >= s.xmax) return false;
  return !includes(s.xip, xid);
}

/** Is everything visible in `a` also visible in `b` (b is at or after a)? */
export function covers(b: Snapshot, a: Snapshot): boolean {
  if (b.xmax < a.xmax) return false;
  // Every xid < a.xmax that a sees must be seen by b: b's in-progress ids below a.xmax must be in progress in a too.
  for (const x of b.xip) {
    if (x >= a.xmax) break;
    if (!includes(a.xip, x) && x >= a.xmin) return false;
    if (x < a.xmin) return false;
  }
  return true;
}

function includes(sorted: readonly number[], x: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid] as number;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
