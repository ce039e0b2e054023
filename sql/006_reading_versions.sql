-- sluice migration 006: every version of a reading has a key that never repeats, and every change is in the
-- snapshot the feed reads.
--
-- Gateways cache formatted readings and serialised /rows bodies. Keyed by id alone that was wrong twice over:
-- an UPDATE keeps the id (so /rows, /time and /latest kept the old values), and TRUNCATE ... RESTART IDENTITY
-- hands the same ids to new rows (so a cached reading of one SLU answered for a new reading of another, a
-- cross-partner leak). The key is now (id, xid): xid8 is 64 bits and never wraps, so no two row versions that
-- were ever committed share it.

-- 1. An UPDATE makes a new version: the row gets the updating transaction's id. Caches then miss it (new key),
--    the stream delivers the new version once (its xid is not visible in older snapshots: it reads as new),
--    and a resume from an older cursor replays it. Writers only insert; this costs them nothing.
create or replace function sluice_reading_new_version() returns trigger language plpgsql as $$
begin
  new.xid := pg_current_xact_id();
  return new;
end $$;

drop trigger if exists sluice_reading_version on slu_reading;
create trigger sluice_reading_version before update on slu_reading
  for each row execute function sluice_reading_new_version();

-- 2. A change counter, bumped by every UPDATE, DELETE and TRUNCATE statement in its own transaction. The feed
--    reads it in the same statement (same snapshot) as the new rows, so "a change committed before this read"
--    is known exactly, in order with the inserts, whether or not a NOTIFY arrived (LISTEN outages included).
--    Derived state (the /latest store, /rows bodies) is rebuilt when it moves. The row lock only orders
--    concurrent DELETE/UPDATE/TRUNCATE statements, which are operator actions; inserts never touch it.
create table if not exists sluice_reading_changes (
  only_row boolean primary key default true check (only_row),
  seq      bigint  not null default 0
);
insert into sluice_reading_changes (only_row) values (true) on conflict do nothing;

create or replace function sluice_notify_reading_change() returns trigger language plpgsql as $$
begin
  update sluice_reading_changes set seq = seq + 1;
  perform pg_notify('sluice_reading_change', lower(tg_op));
  return null;
end $$;

-- 3. The covering index gains xid, so the keys queries of /rows and /time (id, xid) stay index-only. On a
--    large existing table build it beforehand without blocking writers:
--      create index concurrently slu_reading_slu_t_v_idx on slu_reading (slu_id, t desc, id desc)
--        include (xid, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3);
--    and this migration only drops the old one.
create index if not exists slu_reading_slu_t_v_idx on slu_reading (slu_id, t desc, id desc)
  include (xid, p1, p2, p3, k1, k2, k3, a1, a2, a3, v1, v2, v3);
drop index if exists slu_reading_slu_t_cover_idx;
