import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * One row of a payload: PACKED_READING's text (src/format/reading.ts) as PostgreSQL prints it: nine reals (digits,
 * sign, point, exponent, NaN, Infinity; empty for NULL), t (no comma, quote or backslash), three integers or
 * empty, then slu_id, id and xid. The MAC already proves the trigger wrote it; this keeps a mistake anywhere from
 * putting anything but numbers where the frames copy the text as it is.
 */
const PACKED_ROW = /^(?:[-+.0-9eEINaInfity]*,){9}[^,"\\\u0000-\u001f]*,(?:-?[0-9]*,){3}-?[0-9]+,[0-9]+,[0-9]+$/;

/**
 * The rows of a sql/014 payload ('r', 64 hex characters of sha256(key || sha256(body)), then the body: rows each
 * after a newline), or undefined when the MAC is wrong (anyone who can connect may NOTIFY) or a row is not one.
 */
export function verifiedRows(key: Buffer, payload: string): string[] | undefined {
  const body = payload.slice(65);
  const given = Buffer.from(payload.slice(1, 65), 'hex');
  const mac = createHash('sha256').update(key).update(createHash('sha256').update(body).digest()).digest();
  if (given.length !== 32 || !timingSafeEqual(mac, given) || body.charCodeAt(0) !== 10) return undefined;
  const rows = body.slice(1).split('\n');
  for (const r of rows) if (!PACKED_ROW.test(r)) return undefined;
  return rows;
}
