import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatReading, legacyT, PACKED_READING, unpackReading, type FormattedReading } from '../format/reading.ts';

/** A reading as a range query returns it: its id and t (legacy text) for paging marks, and its formatted form. */
export interface KeyedReading {
  readonly id: string;
  readonly t: string;
  readonly formatted: FormattedReading;
}

const KEY_COLUMNS = `r.id::text, r.t::text`;
const ID_COLUMN = `r.id::text`;

/**
 * One range query in two forms over the same `from … where … order by … limit` tail: keys only, and keys with
 * values. Both are index-only scans of slu_reading_slu_t_cover_idx (migration 003).
 */
export interface RangeQuery {
  readonly name: string;
  readonly keysSql: string;
  readonly fullSql: string;
  /** Index in the values of the LIMIT parameter. */
  readonly limitIndex: number;
}

/** `withT: false` when no caller needs t from the keys (no paging mark): PostgreSQL then returns ids only. */
export function rangeQuery(name: string, tail: string, opts: { withT?: boolean; limitIndex: number }): RangeQuery {
  return {
    name, limitIndex: opts.limitIndex,
    keysSql: `select ${opts.withT === false ? ID_COLUMN : KEY_COLUMNS} ${tail}`,
    fullSql: `select ${PACKED_READING} ${tail}`,
  };
}

/** Above this LIMIT, the cache is probed with the first key before all keys are read (see readThroughCache). */
const PROBE_ABOVE = 1000;

/** The keys form's rows: [id] or [id, t] (t in PostgreSQL's text form). */
export type KeyRows = ReadonlyArray<readonly [string, string?]>;

export async function fetchKeys(db: pg.Pool | pg.PoolClient, q: RangeQuery, values: unknown[]): Promise<KeyRows> {
  return (await db.query<[string, string?]>({ name: `${q.name}_keys`, rowMode: 'array', text: q.keysSql, values })).rows;
}

/**
 * Runs the keys form and answers from the cache; only when some reading is not cached does it run the full form
 * and format what it lacks. Keys first because a warm /rows is then ~4x cheaper for PostgreSQL and the pg
 * driver (15 text columns per row not produced, sent nor parsed); the full form reads the values from the index,
 * never the heap. The full form's rows are the answer when it runs (a consistent, possibly newer, view).
 */
export async function readThroughCache(
  db: pg.Pool | pg.PoolClient,
  cache: ReadingCache,
  q: RangeQuery,
  values: unknown[],
  prefetched?: KeyRows,
): Promise<KeyedReading[]> {
  let keys = prefetched;
  let cold = false;
  if (!keys && Number(values[q.limitIndex]) > PROBE_ABOVE) {
    // A big page whose newest reading is not cached is almost surely cold: skip reading 10,000 keys for nothing
    // (~10% of a cold 10,000-row /time) and go straight to the values.
    const probe = await fetchKeys(db, q, values.map((v, i) => (i === q.limitIndex ? 1 : v)));
    if (probe.length === 0) return [];
    cold = !cache.peek((probe[0] as readonly [string, string?])[0]);
  }
  if (!cold) {
    keys ??= await fetchKeys(db, q, values);
    const out: KeyedReading[] = new Array(keys.length);
    let i = 0;
    for (; i < keys.length; i++) {
      const [id, t] = keys[i] as readonly [string, string?];
      const formatted = cache.get(id);
      if (!formatted) break;
      out[i] = { id, t: t === undefined ? '' : legacyT(t), formatted };
    }
    if (i === keys.length) return out;
  }

  const full = await db.query<[string]>({ name: `${q.name}_full`, rowMode: 'array', text: q.fullSql, values });
  return full.rows.map(([packed]) => {
    const { row, id } = unpackReading(packed);
    let formatted = cache.get(id);
    if (!formatted) {
      formatted = formatReading(row);
      cache.set(id, formatted);
    }
    return { id, t: legacyT(row[9]), formatted };
  });
}
