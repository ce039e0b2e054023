import { paramError, type ParamProblem } from '../errors.ts';
import type { PageMark } from '../db/range.ts';

/** Largest `cnt` for /rows and rows per /time page: the legacy API's documented limit. */
export const MAX_ROWS = 10_000;
const INT4_MAX = 2_147_483_647;
/** Unix seconds above this are milliseconds in disguise (1e11 s is the year 5138). */
const MS_THRESHOLD = 100_000_000_000;

type Query = Record<string, unknown>;

/** Collects every problem with a query string, then throws one 400 naming the first parameter. */
class Problems {
  readonly list: ParamProblem[] = [];
  add(parameter: string, message: string): undefined {
    this.list.push({ parameter, message });
    return undefined;
  }
  throwIfAny(): void {
    const first = this.list[0];
    if (first) throw paramError(first.parameter, first.message, this.list);
  }
}

function single(q: Query, name: string, p: Problems): string | undefined {
  const v = q[name];
  if (v === undefined) return p.add(name, `${name} is required`);
  if (Array.isArray(v)) return p.add(name, `${name} is given ${v.length} times; give it once`);
  if (typeof v !== 'string') return p.add(name, `${name} must be a string`);
  return v;
}

function integer(q: Query, name: string, p: Problems, min: number, max: number, maxHint?: string, minHint?: string): number | undefined {
  const raw = single(q, name, p);
  if (raw === undefined) return undefined;
  const shown = raw.length > 40 ? JSON.stringify(raw.slice(0, 40) + '…') : JSON.stringify(raw);
  if (!/^[+-]?\d+$/.test(raw.trim())) return p.add(name, `${name} must be an integer, got ${shown}`);
  const n = Number(raw);
  if (n < min) return p.add(name, minHint ?? `${name} must be >= ${min}, got ${shown}`);
  if (n > max) return p.add(name, maxHint ?? `${name} must be <= ${max}, got ${shown}`);
  return n;
}

function unixSeconds(q: Query, name: string, p: Problems): number | undefined {
  const raw = q[name];
  if (typeof raw === 'string' && /^\d+$/.test(raw.trim()) && Number(raw) >= MS_THRESHOLD) {
    return p.add(
      name,
      `${name}=${raw} looks like milliseconds; Unix time must be in seconds (e.g. ${Math.floor(Number(raw) / 1000)})`,
    );
  }
  return integer(q, name, p, 0, MS_THRESHOLD - 1);
}

/** /rows: slu_id and cnt (1..10000). */
export function parseRowsQuery(q: Query): { sluId: number; cnt: number } {
  const p = new Problems();
  const sluId = integer(q, 'slu_id', p, 0, INT4_MAX);
  const cnt = integer(q, 'cnt', p, 1, MAX_ROWS, `cnt must be between 1 and ${MAX_ROWS} (the API's cap), got ${JSON.stringify(q.cnt)}`, `cnt must be between 1 and ${MAX_ROWS}, got ${JSON.stringify(q.cnt)}`);
  p.throwIfAny();
  return { sluId: sluId as number, cnt: cnt as number };
}

/** /time: slu_id, begin <= end (Unix seconds), and the optional page mark `before` from a previous Link header. */
export function parseTimeQuery(q: Query): { sluId: number; begin: number; end: number; before?: PageMark } {
  const p = new Problems();
  const sluId = integer(q, 'slu_id', p, 0, INT4_MAX);
  const begin = unixSeconds(q, 'begin', p);
  const end = unixSeconds(q, 'end', p);
  if (begin !== undefined && end !== undefined && begin > end) p.add('begin', `begin (${begin}) is after end (${end})`);
  let before: PageMark | undefined;
  if (q.before !== undefined) {
    const raw = single(q, 'before', p);
    if (raw !== undefined) before = decodePageMark(raw) ?? p.add('before', 'before is not a page mark from a Link header of /time');
  }
  p.throwIfAny();
  return { sluId: sluId as number, begin: begin as number, end: end as number, ...(before ? { before } : {}) };
}

const MARK = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})\|(\d{1,18})$/;

/** Opaque page mark for /time paging: base64url of "<t>|<id>" of the last row sent. */
export function encodePageMark(t: string, id: string): string {
  return Buffer.from(`${t}|${id}`).toString('base64url');
}

export function decodePageMark(s: string): PageMark | undefined {
  if (s.length > 100 || !/^[A-Za-z0-9_-]+$/.test(s)) return undefined;
  const m = MARK.exec(Buffer.from(s, 'base64url').toString('utf8'));
  if (!m) return undefined;
  const t = m[1] as string;
  // Reject impossible dates here, so a forged mark is a 400 and never a database error. Year 0 exists for Date,
  // not for PostgreSQL (1 BC is followed by AD 1).
  if (t.startsWith('0000')) return undefined;
  const d = new Date(t.slice(0, 19).replace(' ', 'T') + 'Z');
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== t.slice(0, 19).replace(' ', 'T')) return undefined;
  return { t, id: m[2] as string };
}

