import type pg from 'pg';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatPacked, PACKED_READING, packedId, type FormattedReading } from '../format/reading.ts';

/** SQL that loads full readings for the ids the cache does not have. */
export const BY_ID_SQL = `select ${PACKED_READING} from slu_reading r where r.id = any($1::bigint[])`;

/**
 * Turns ids (in the order a query returned them) into formatted readings, loading and formatting only those
 * the cache lacks, in one query. Position i answers ids[i] (undefined where that row no longer exists).
 */
export async function readingsByIdAligned(
  db: pg.Pool | pg.PoolClient,
  cache: ReadingCache,
  ids: readonly string[],
): Promise<Array<FormattedReading | undefined>> {
  const out = new Array<FormattedReading | undefined>(ids.length);
  const missing: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    const f = cache.get(ids[i] as string);
    if (f) out[i] = f;
    else missing.push(ids[i] as string);
  }
  if (missing.length > 0) {
    const res = await db.query<[string]>({ name: 'sluice_by_id', rowMode: 'array', text: BY_ID_SQL, values: [missing] });
    const loaded = new Map<string, FormattedReading>();
    for (const [packed] of res.rows) {
      const id = packedId(packed);
      const f = formatPacked(packed, id).formatted;
      loaded.set(id, f);
      cache.set(id, f);
    }
    for (let i = 0; i < ids.length; i++) if (!out[i]) out[i] = loaded.get(ids[i] as string);
  }
  return out;
}
