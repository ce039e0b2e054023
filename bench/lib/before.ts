/**
 * On-disk bytes per reading before partitioning: measured once on the old 10M benchmark database (var/bench-pg,
 * seeded by bench:rest before issue 14: migrations 001-009, slu_reading a plain table with its primary key on id,
 * slu_reading_xid_idx (xid, id) and the covering slu_reading_slu_t_v_idx, indexes built after the rows, then
 * VACUUM ANALYZE), 2026-11-30, PostgreSQL 18.4: 10,200,000 readings, pg_total_relation_size 3,507,372,032 bytes
 * = heap 1,114,112,000 + indexes 2,392,924,160 (primary key 229,122,048, xid 321,740,800, covering 1,842,061,312).
 * That database was deleted afterwards (it had the old schema); the figures are kept here.
 */
export const BEFORE_BYTES_PER_READING = 3_507_372_032 / 10_200_000;
export const BEFORE_HEAP_BYTES_PER_READING = 1_114_112_000 / 10_200_000;
export const BEFORE_INDEX_BYTES_PER_READING = 2_392_924_160 / 10_200_000;
export const BEFORE_SOURCE = 'var/bench-pg before issue 14: plain table, migrations 001-009, 10,200,000 readings, measured 2026-11-30';
