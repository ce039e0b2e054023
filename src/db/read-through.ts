import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatReading, legacyT, READING_COLUMNS, type FormattedReading, type ReadingRow } from '../format/reading.ts';

/** A reading as a range query returns it: its id and t (legacy text) for paging marks, and its formatted form. */
export interface KeyedReading {
  readonly id: string;
  readonly t: string;
  readonly formatted: FormattedReading;
}

const KEY_COLUMNS = `r.id::text, r.t::text`;

/**
 * One range query in two forms over the same `from … where … order by … limit` tail: keys only, and keys with
 * values. Both are index-only scans of slu_reading_slu_t_cover_idx (migration 003).
 */
export interface RangeQuery {
  readonly name: string;
  readonly keysSql: string;
  readonly fullSql: string;
}

export function rangeQuery(name: string, tail: string): RangeQuery {
  return { name, keysSql: `select ${KEY_COLUMNS} ${tail}`, fullSql: `select ${READING_COLUMNS}, r.id::text ${tail}` };
}

/**
 * Runs the keys form and answers from the cache; only when some reading is not cached does it run the full form
 * and format what it lacks. Keys first because a warm /rows is then ~4x cheaper for PostgreSQL and the pg
 * driver (15 text columns per row not produced, sent nor parsed); the full form reads the values from the index,
 * never the heap. The full form's rows are the answer when it runs (a consistent, possibly newer, view).
 */
export async function readThroughCache(db: pg.Pool | pg.PoolClient, cache: ReadingCache, q: RangeQuery, values: unknown[]): Promise<KeyedReading[]> {
  const keys = await db.query<[string, string]>({ name: `${q.name}_keys`, rowMode: 'array', text: q.keysSql, values });
  const out: KeyedReading[] = new Array(keys.rows.length);
  let i = 0;
  for (; i < keys.rows.length; i++) {
    const [id, t] = keys.rows[i] as [string, string];
    const formatted = cache.get(id);
    if (!formatted) break;
    out[i] = { id, t: legacyT(t), formatted };
  }
  if (i === keys.rows.length) return out;

  const full = await db.query<[...ReadingRow, string]>({ name: `${q.name}_full`, rowMode: 'array', text: q.fullSql, values });
  return full.rows.map((row) => {
    const id = row[14] as string;
    let formatted = cache.get(id);
    if (!formatted) {
      formatted = formatReading(row as unknown as ReadingRow);
      cache.set(id, formatted);
    }
    return { id, t: legacyT(row[9] as string), formatted };
  });
}
