import pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatPacked, KEY_COLUMN, keyId, PACKED_READING, packedKey, type KeyedReading } from '../format/reading.ts';

export type { KeyedReading };


/**
 * One range query in two forms over the same `from … where … order by … limit` tail: keys only, and keys with
 * values. Both are index-only scans of slu_reading_slu_t_v_idx (migrations 003, 006).
 */
export interface RangeQuery {
  readonly name: string;
  readonly keysSql: string;
  readonly fullSql: string;
  /** Index in the values of the LIMIT parameter. */
  readonly limitIndex: number;
}

/**
 * The keys form returns version keys only (`id,xid`, KEY_COLUMN): a page mark's t comes from the formatted reading
 * (readingT), so PostgreSQL need not print 10,000 timestamps for the one the mark uses. A key names one version
 * of one row forever (an UPDATE gives a new xid, RESTART IDENTITY reuses ids but never xids), so answering keys
 * from the cache cannot serve a stale value or another SLU's reading.
 */
export function rangeQuery(name: string, tail: string, opts: { limitIndex: number }): RangeQuery {
  return {
    name, limitIndex: opts.limitIndex,
    keysSql: `select ${KEY_COLUMN} ${tail}`,
    fullSql: `select ${PACKED_READING} ${tail}`,
  };
}

/** Above this LIMIT, the cache is probed with the first key before all keys are read (see readThroughCache). */
const PROBE_ABOVE = 1000;

/** The keys form's rows: [version key]. */
export type KeyRows = ReadonlyArray<readonly [string]>;

export async function fetchKeys(db: pg.Pool | pg.PoolClient, q: RangeQuery, values: unknown[]): Promise<KeyRows> {
  return (await db.query<[string]>({ name: `${q.name}_keys`, rowMode: 'array', text: q.keysSql, values })).rows;
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
    cold = !cache.peek((probe[0] as readonly [string])[0]);
  }
  if (!cold) {
    keys ??= await fetchKeys(db, q, values);
    const out: KeyedReading[] = new Array(keys.length);
    let i = 0;
    for (; i < keys.length; i++) {
      const [key] = keys[i] as readonly [string];
      const formatted = cache.get(key);
      if (!formatted) break;
      out[i] = { key, id: keyId(key), formatted };
    }
    if (i === keys.length) return out;
  }

  // Formatted row by row as the rows arrive: the ~1.5 MB a 10,000-row page takes on the wire comes in many
  // socket reads, so PostgreSQL produces the rest of the page while this process formats the first rows (on
  // two cores, the cold page costs about the larger of the two instead of their sum).
  const out: KeyedReading[] = [];
  await eachRow(db, { name: `${q.name}_full`, rowMode: 'array', text: q.fullSql, values }, (row) => {
    const packed = row[0] as string;
    const key = packedKey(packed);
    const cached = cache.get(key);
    if (cached) out.push({ key, id: keyId(key), formatted: cached });
    else {
      const r = formatPacked(packed, key);
      cache.set(key, r.formatted);
      out.push(r);
    }
  });
  return out;
}

/**
 * Runs a query and hands each row to `onRow` as the driver parses it, instead of once the whole result is in.
 * The pool's timeouts apply as to any query; an error thrown by `onRow` fails the call once the query is done.
 */
export async function eachRow(db: pg.Pool | pg.PoolClient, config: pg.QueryArrayConfig, onRow: (row: unknown[]) => void): Promise<void> {
  const client = db instanceof pg.Pool ? await db.connect() : db;
  let failed: unknown;
  try {
    await new Promise<void>((resolve, reject) => {
      const query = new pg.Query(config, undefined, (err: Error | undefined) => (err ? reject(err) : resolve()));
      query.on('row', (row: unknown[]) => {
        if (failed !== undefined) return;
        try {
          onRow(row);
        } catch (err) {
          failed = err;
        }
      });
      void client.query(query as unknown as pg.QueryConfig);
    });
  } catch (err) {
    if (client !== db) (client as pg.PoolClient).release(err as Error); // a broken connection is not reused
    throw err;
  }
  if (client !== db) (client as pg.PoolClient).release();
  if (failed !== undefined) throw failed;
}
