/**
 * On-disk bytes per reading before partitioning, measured once on the old 10M benchmark database (var/bench-pg,
 * seeded by bench:rest before issue 14: migrations 001-009, slu_reading a plain table with its primary key on id,
 * slu_reading_xid_idx (xid, id) and the covering slu_reading_slu_t_v_idx), 2026-11-30, PostgreSQL 18.4,
 * 10,200,000 readings. That database was deleted afterwards (it had the old schema); the figures are kept here.
 *
 * As that benchmark left it: pg_total_relation_size 3,507,372,032 bytes = heap 1,114,112,000 + indexes
 * 2,392,924,160 (primary key 229,122,048, xid 321,740,800, covering 1,842,061,312). Its covering index had been
 * filled row by row (the old seeding dropped an index that no longer existed and the migrations it re-ran built
 * nothing), so it was 1.7x the size of a fresh build. After REINDEX TABLE on the same rows (what bench/lib/seed.ts
 * does now: indexes built after the load): pg_total_relation_size 2,728,296,448 bytes = heap 1,114,112,000 (with
 * its free space and visibility maps: 1,114,447,872) + indexes 1,613,848,576 (primary key 229,130,240, xid
 * 321,748,992, covering 1,062,969,344).
 */
const ROWS = 10_200_000;
export const BEFORE_BYTES_PER_READING = 3_507_372_032 / ROWS;
/** pg_table_size: the heap with its free space and visibility maps (as bench-db.ts readingStorage counts it). */
export const BEFORE_HEAP_BYTES_PER_READING = 1_114_447_872 / ROWS;
export const BEFORE_INDEX_BYTES_PER_READING = 2_392_924_160 / ROWS;
/** The same rows with the indexes rebuilt (REINDEX TABLE): the like-for-like reference for a freshly seeded database. */
export const BEFORE_PACKED_BYTES_PER_READING = 2_728_296_448 / ROWS;
export const BEFORE_PACKED_INDEX_BYTES_PER_READING = 1_613_848_576 / ROWS;
export const BEFORE_PACKED_PKEY_BYTES_PER_READING = 229_130_240 / ROWS;
export const BEFORE_SOURCE = 'var/bench-pg before issue 14: plain table, migrations 001-009, 10,200,000 readings, measured 2026-11-30 (bench/lib/before.ts)';
