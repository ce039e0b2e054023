import { formatSnapshot, parseSnapshot, type Snapshot } from './snapshot.ts';

/**
 * The opaque resume cursor. Two forms, both valid on any gateway process of the same database:
 *  - settled: "everything visible in snapshot S has been delivered";
 *  - paging:  during a catch-up from S toward Q: "everything visible in S, plus the rows visible in Q but not in
 *             S up to (xid, id) in catch-up order". Resuming continues that catch-up exactly where it stopped.
 * Encoded as "c1." + base64url(JSON) so it survives URLs unescaped.
 */
export type Cursor =
  | { readonly kind: 'settled'; readonly s: Snapshot }
  | { readonly kind: 'paging'; readonly s: Snapshot; readonly q: Snapshot; readonly xid: number; readonly id: number };

const PREFIX = 'c1.';
/** Cursors longer than this are refused (a snapshot with thousands of in-progress transactions is not one). */
export const MAX_CURSOR_LENGTH = 16_384;

export function encodeCursor(c: Cursor): string {
  const body = c.kind === 'settled' ? { s: formatSnapshot(c.s) } : { s: formatSnapshot(c.s), q: formatSnapshot(c.q), x: c.xid, i: c.id };
  return PREFIX + Buffer.from(JSON.stringify(body)).toString('base64url');
}

/** Decodes a cursor from a client; undefined when it is not one this gateway wrote. Never throws. */
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
  if (typeof body !== 'object' || body === null) return undefined;
  const o = body as Record<string, unknown>;
  const s = typeof o.s === 'string' ? parseSnapshot(o.s) : undefined;
  if (!s) return undefined;
  if (o.q === undefined) return Object.keys(o).length === 1 ? { kind: 'settled', s } : undefined;
  const q = typeof o.q === 'string' ? parseSnapshot(o.q) : undefined;
  const xid = o.x;
  const id = o.i;
  if (!q || !Number.isSafeInteger(xid) || !Number.isSafeInteger(id) || (id as number) < 0 || (xid as number) < 0) return undefined;
  return { kind: 'paging', s, q, xid: xid as number, id: id as number };
}
