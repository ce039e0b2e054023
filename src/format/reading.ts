import { formatFloat4 } from './float4.ts';

/**
 * The legacy JSON shapes. Partner code parses these, so field order, value types and separators follow the seed
 * document exactly: p/k/a as strings in float4 `%.9g`, v as integers, t as "YYYY-MM-DD HH:MM:SS.ffffff", and
 * Python `json.dumps` separators (", " and ": ") as the legacy service printed them.
 *
 * Rows come from PostgreSQL in array mode, columns in READING_COLUMNS order, with reals as their text output
 * (see db/pool.ts) so no value is parsed twice.
 */

/** SQL select list shared by every reading query; order matters (array row mode). */
export const READING_COLUMNS =
  "p1, p2, p3, k1, k2, k3, a1, a2, a3, to_char(t, 'YYYY-MM-DD HH24:MI:SS.US') as t, v1, v2, v3, slu_id";

/** One reading as PostgreSQL returns it in array mode (see READING_COLUMNS). */
export type ReadingRow = [
  p1: string | null, p2: string | null, p3: string | null,
  k1: string | null, k2: string | null, k3: string | null,
  a1: string | null, a2: string | null, a3: string | null,
  t: string,
  v1: number | null, v2: number | null, v3: number | null,
  slu_id: number,
  ...rest: unknown[],
];

const REAL_KEYS = ['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3'] as const;
const REAL_PREFIX = REAL_KEYS.map((k, i) => (i === 0 ? `{"${k}": ` : `, "${k}": `));

function real(v: string | null): string {
  return v === null ? 'null' : '"' + formatFloat4(v) + '"';
}

function int(v: number | null): string {
  return v === null ? 'null' : String(v);
}

function realsAndTime(r: ReadingRow): string {
  let s = '';
  for (let i = 0; i < 9; i++) s += REAL_PREFIX[i] + real(r[i] as string | null);
  return s + ', "t": "' + r[9] + '"';
}

/** The /latest (and stream) object: p1..a3, t, slu_id, v1..v3. */
export function latestJson(r: ReadingRow): string {
  return realsAndTime(r) + ', "slu_id": ' + r[13] + ', "v1": ' + int(r[10]) + ', "v2": ' + int(r[11]) + ', "v3": ' + int(r[12]) + '}';
}

/** The /rows and /time object: p1..a3, t, v1..v3 (no slu_id: it is in the wrapper). */
export function rowJson(r: ReadingRow): string {
  return realsAndTime(r) + ', "v1": ' + int(r[10]) + ', "v2": ' + int(r[11]) + ', "v3": ' + int(r[12]) + '}';
}

/** The /rows and /time wrapper, `{"data": [...], "slu_id": N}`, built without re-serialising the rows. */
export function wrapperJson(rows: readonly ReadingRow[], sluId: number, limit = rows.length): string {
  const n = Math.min(limit, rows.length);
  const parts = new Array<string>(n);
  for (let i = 0; i < n; i++) parts[i] = rowJson(rows[i] as ReadingRow);
  return '{"data": [' + parts.join(', ') + '], "slu_id": ' + sluId + '}';
}

/** The /latest array. */
export function latestArrayJson(rows: readonly ReadingRow[]): string {
  const parts = new Array<string>(rows.length);
  for (let i = 0; i < rows.length; i++) parts[i] = latestJson(rows[i] as ReadingRow);
  return '[' + parts.join(', ') + ']';
}
