import { formatFloat4, formatFloat4Span } from './float4.ts';

/**
 * The legacy JSON shapes. Partner code parses these, so field order, value types and separators follow the seed
 * document exactly: p/k/a as strings in float4 `%.9g`, v as integers, t as "YYYY-MM-DD HH:MM:SS.ffffff", and
 * Python `json.dumps` separators (", " and ": ") as the legacy service printed them.
 *
 * A reading is formatted once into a FormattedReading (two fragments around where slu_id goes), then reused by
 * every response and stream frame that contains it: /latest objects are head + slu_id + tail, /rows objects are
 * head + tail.
 */

/** SQL select list for formatting: order matters (array row mode). Qualified: see db/rows.ts. */
export const READING_COLUMNS =
  "r.p1, r.p2, r.p3, r.k1, r.k2, r.k3, r.a1, r.a2, r.a3, r.t::text as t, r.v1, r.v2, r.v3, r.slu_id";

/**
 * READING_COLUMNS, the id and the xid packed into one text column: `p1,…,a3,t,v1,v2,v3,slu_id,id,xid`, NULL as
 * an empty field (no value contains a comma). For large pages: the driver's cost is per column, and a
 * 10,000-row /time page read 25-29 ms this way against 34-48 ms as 15 columns (measured, bench database).
 */
export const PACKED_READING =
  "concat_ws(',', " +
  ['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3'].map((c) => `coalesce(r.${c}::text, '')`).join(', ') +
  ", coalesce(r.t::text, ''), coalesce(r.v1::text, ''), coalesce(r.v2::text, ''), coalesce(r.v3::text, ''), r.slu_id, r.id, r.xid)";

/**
 * SQL for the version key of a row, `id,xid`: exactly the tail of its PACKED_READING (see packedKey). Ids repeat
 * after TRUNCATE ... RESTART IDENTITY and survive an UPDATE; an xid8 never repeats, and an UPDATE gives the row a
 * new one (sql/006). So a key names one committed version of one reading, forever: whatever is cached under it
 * can never be stale or belong to another SLU.
 */
export const KEY_COLUMN = "concat(r.id, ',', r.xid)";

/** A reading as a range query returns it: its version key (for caches), its id (paging marks), its formatted form. */
export interface KeyedReading {
  readonly key: string;
  readonly id: string;
  readonly formatted: FormattedReading;
}

/** The legacy t of a formatted reading: the last field of its head (`…, "t": "YYYY-MM-DD HH:MM:SS.ffffff"`). */
export function readingT(f: FormattedReading): string {
  const at = f.head.lastIndexOf('"t": "');
  return at < 0 ? '' : f.head.slice(at + 6, -1); // '' for a NULL t: sorts before every timestamp
}

/** The version key (`id,xid`, see KEY_COLUMN) of a PACKED_READING value: its last two fields. */
export function packedKey(packed: string): string {
  return packed.slice(packed.lastIndexOf(',', packed.lastIndexOf(',') - 1) + 1);
}

/** The id of a version key or PACKED_READING tail `…,id,xid`. */
export function keyId(key: string): string {
  const end = key.lastIndexOf(',');
  return key.slice(key.lastIndexOf(',', end - 1) + 1, end);
}

/** The xid of a version key or PACKED_READING value (its last field). */
export function keyXid(key: string): string {
  return key.slice(key.lastIndexOf(',') + 1);
}

/**
 * A PACKED_READING value straight into its legacy fragments, in one pass over the string: no split, no
 * intermediate row, and the reals parsed where they lie. This is the cold path of a 10,000-row /time page
 * (splitting and formatting a field at a time took ~2x as long; see bench/rest.ts).
 */
export function formatPacked(packed: string, key = packedKey(packed)): KeyedReading {
  let head = '';
  let at = 0;
  for (let i = 0; i < 9; i++) {
    const comma = packed.indexOf(',', at);
    head += (REAL_PREFIX[i] as string) + (comma === at ? 'null' : '"' + formatFloat4Span(packed, at, comma) + '"');
    at = comma + 1;
  }
  let comma = packed.indexOf(',', at);
  // t is NOT NULL in a table sluice created; a legacy table taken over may still hold NULLs.
  head += comma === at ? ', "t": null' : ', "t": "' + legacyT(packed.slice(at, comma)) + '"';
  let tail = '';
  for (let i = 0; i < 3; i++) {
    at = comma + 1;
    comma = packed.indexOf(',', at);
    // PostgreSQL's integer text is already the JSON integer: copied, not parsed and printed again.
    tail += (INT_PREFIX[i] as string) + (comma === at ? 'null' : packed.slice(at, comma));
  }
  at = comma + 1;
  comma = packed.indexOf(',', at);
  const sluId = Number(packed.slice(at, comma));
  return { key, id: keyId(key), formatted: { sluId, head: flat(head), tail: flat(tail + '}') } };
}

/**
 * The legacy t ("YYYY-MM-DD HH:MM:SS.ffffff") from PostgreSQL's timestamp text output (DateStyle ISO, set on
 * every pooled connection), which drops trailing zeros of the fraction. Cheaper than to_char() in SQL by far:
 * to_char took 33 of 54 ms of a 10,000-row /time query.
 *
 * Outside years 1-9999 the column can still hold what a writer put there; those keep PostgreSQL's own spelling
 * with the fraction padded the same way: "10000-01-01 00:00:00.000000", "4713-01-01 00:00:00.000000 BC",
 * "infinity", "-infinity". A partner parser expecting the legacy shape then fails loudly on them instead of
 * reading 4713 BC as 4713 AD. They order as time (tSortKey), not as text.
 */
export function legacyT(pgText: string): string {
  const n = pgText.length;
  if (n === 19 && pgText.charCodeAt(4) === 45) return pgText + '.000000';
  if (n > 20 && n < 26 && pgText.charCodeAt(19) === 46 && pgText.charCodeAt(n - 1) !== 67) return pgText + '000000'.slice(0, 26 - n);
  if (n === 26 && pgText.charCodeAt(4) === 45 && pgText.charCodeAt(25) !== 67) return pgText; // not '… BC'
  const m = ODD_T.exec(pgText);
  if (!m) return pgText; // infinity, -infinity
  return `${m[1]}${((m[2] ?? '.') + '000000').slice(0, 7)}${m[3] ?? ''}`;
}

const ODD_T = /^(\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d{1,6})?( BC)?$/;

/**
 * A string that sorts like the time a legacy t stands for: the legacy text itself for years 1000-9999 (fixed
 * width), and for the rest a sign, a six-digit year (counted down before Christ) and the remainder. Plain text
 * comparison made "4713-01-01 00:00:00 BC" the newest reading of its SLU.
 */
export function tSortKey(t: string): string {
  if (t.length === 26 && t.charCodeAt(4) === 45 && t.charCodeAt(25) !== 67) return '1' + t;
  if (t === 'infinity') return '2';
  if (t === '-infinity' || t === '') return '0'; // '' = a NULL t (legacy tables only): oldest, as before
  const dash = t.indexOf('-');
  const year = Number(t.slice(0, dash));
  const bc = t.endsWith(' BC');
  const rest = t.slice(dash, bc ? -3 : undefined);
  // Years 1000-9999 AD must sort exactly as '1' + t does: '1' + a four-digit year + rest.
  if (!bc) return year <= 9999 ? '1' + String(year).padStart(4, '0') + rest : '1' + '~' + String(year).padStart(7, '0') + rest;
  return '0~' + String(1_000_000 - year).padStart(7, '0') + rest;
}

/** One reading as PostgreSQL returns it in array mode (see READING_COLUMNS); reals as their text output. */
export type ReadingRow = [
  p1: string | null, p2: string | null, p3: string | null,
  k1: string | null, k2: string | null, k3: string | null,
  a1: string | null, a2: string | null, a3: string | null,
  t: string,
  v1: number | null, v2: number | null, v3: number | null,
  slu_id: number,
  ...rest: unknown[],
];

/** A reading serialised once: `{"p1": … "t": "…"` + (`, "slu_id": N` for /latest) + `, "v1": … }`. */
export interface FormattedReading {
  readonly sluId: number;
  /** `{"p1": "…", … "t": "…"` */
  readonly head: string;
  /** `, "v1": …, "v2": …, "v3": …}` */
  readonly tail: string;
}

const INT_PREFIX = [', "v1": ', ', "v2": ', ', "v3": '];
const REAL_PREFIX = ['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3'].map((k, i) => (i === 0 ? `{"${k}": ` : `, "${k}": `));

function real(v: string | null): string {
  return v === null ? 'null' : '"' + formatFloat4(v) + '"';
}

function int(v: number | null): string {
  return v === null ? 'null' : String(v);
}

/**
 * Formats a row of READING_COLUMNS into its legacy JSON fragments. The gateway reads packed rows (formatPacked);
 * this is the field-by-field reference the tests check formatPacked against and bench:rest's legacy baseline.
 */
export function formatReading(r: ReadingRow): FormattedReading {
  let head = '';
  for (let i = 0; i < 9; i++) head += REAL_PREFIX[i] + real(r[i] as string | null);
  head += ', "t": "' + legacyT(r[9]) + '"';
  return { sluId: r[13], head: flat(head), tail: flat(', "v1": ' + int(r[10]) + ', "v2": ' + int(r[11]) + ', "v3": ' + int(r[12]) + '}') };
}

/** Reading a character makes V8 flatten a concatenated (rope) string once, here, not in every response. */
function flat(s: string): string {
  void (s.length > 0 && s.charCodeAt(0));
  return s;
}

/** The /latest (and stream) object: p1..a3, t, slu_id, v1..v3. */
export function latestJson(f: FormattedReading): string {
  return f.head + ', "slu_id": ' + f.sluId + f.tail;
}

/** The /rows and /time object: p1..a3, t, v1..v3 (no slu_id: it is in the wrapper). */
export function rowJson(f: FormattedReading): string {
  return f.head + f.tail;
}

/** The /rows and /time wrapper, `{"data": [...], "slu_id": N}`. */
export function wrapperJson(readings: readonly FormattedReading[], sluId: number): string {
  let s = '{"data": [';
  for (let i = 0; i < readings.length; i++) {
    const f = readings[i] as FormattedReading;
    s += (i === 0 ? '' : ', ') + f.head + f.tail;
  }
  return s + '], "slu_id": ' + sluId + '}';
}

/** The /latest array. */
export function latestArrayJson(readings: readonly FormattedReading[]): string {
  let s = '[';
  for (let i = 0; i < readings.length; i++) {
    const f = readings[i] as FormattedReading;
    s += (i === 0 ? '' : ', ') + f.head + ', "slu_id": ' + f.sluId + f.tail;
  }
  return s + ']';
}
