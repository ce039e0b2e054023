-- sluice migration 003: /rows and /time read one index range instead of ~1 heap page per reading.
-- Readings of one SLU arrive interleaved with every other SLU's, so by (slu_id, t) they sit on as many heap pages as
-- there are rows: a cold /time of 1,000 rows read ~1,000 pages (150-270 ms on the 10M-row benchmark). With the
-- values in the index, the same range is ~15 index pages, an index-only scan (readings are never updated, so the
-- visibility map stays set once autovacuum has passed). It costs ~1 GB per 10M rows and replaces the key-only
-- index of 001, which it serves in every query (same key order).
--
-- On a large existing table this build holds a write lock for its duration (~20 s per 10M rows here). To avoid
-- that, create it beforehand with
--   create index concurrently slu_reading_slu_t_cover_idx on slu_reading (slu_id, t desc, id desc)
--     include (p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3);
-- and this migration only drops the old index.
do $$
begin
  if to_regclass('slu_reading_slu_t_v_idx') is null then -- built already by an online takeover (src/db/takeover.ts)
    create index if not exists slu_reading_slu_t_cover_idx on slu_reading (slu_id, t desc, id desc)
      include (p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3);
  end if;
end $$;
drop index if exists slu_reading_slu_t_idx;
