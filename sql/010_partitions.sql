-- sluice migration 010: what time-partitioned storage needs (docs/operations.md, "Storage and retention").
--
-- slu_reading becomes a table partitioned by range of t. This migration only defines the pieces; the switch itself
-- (src/db/takeover.ts) runs after the migrations in steps of its own, because on a large table it must not hold a
-- lock while it checks every row: the old table is attached, as it is, as the first partition
-- slu_reading_legacy [MINVALUE, cutoff), partitions of PARTITION_WIDTH follow from the cutoff, and a default
-- partition catches any t no partition covers (far past, far future), so writers never get an error for a t.
--
-- Why the feed needs more than the partitions: it reads "rows not visible in snapshot S" by xid. Over 400
-- partitions that read is planned and probed 400 times (18.8 ms instead of 0.6 ms, npm run bench:partitions), so
-- it reads only the hot partitions (t >= a bound, pruned when planned). A partition turns cold when its time is
-- past: from then on every row written into it is also noted here (the writing transaction and its t range),
-- and the feed reads those through the note. The trigger that notes them is added under a lock that waits for
-- every transaction still writing into the partition, so no row written before it was added can be missed
-- (src/db/partition-map.ts has the proof).

-- Every partition sluice made, its range and when it turned cold (the transaction that added the late trigger).
-- lo null = MINVALUE (the legacy partition). The default partition is not listed: it is always noted.
create table if not exists sluice_partition (
  name     text      primary key,
  lo       timestamp,
  hi       timestamp not null,
  cold_xid xid8
);

-- Transactions that wrote into a cold partition (or the default one), with the t range they wrote. Kept for the
-- replay window, then pruned by the maintenance (src/db/partitions.ts).
create table if not exists sluice_reading_late (
  xid xid8      primary key,
  lo  timestamp not null,
  hi  timestamp not null
);

create or replace function sluice_note_late() returns trigger language plpgsql as $$
begin
  insert into sluice_reading_late as l (xid, lo, hi) values (pg_current_xact_id(), new.t, new.t)
    on conflict (xid) do update set lo = least(l.lo, excluded.lo), hi = greatest(l.hi, excluded.hi)
      where excluded.lo < l.lo or excluded.hi > l.hi;
  return null;
end $$;

-- The reading triggers of 002, 005, 006 and 009, (re)made on whatever slu_reading is now: the takeover makes them
-- on the partitioned table, whose row triggers PostgreSQL copies to every partition.
create or replace function sluice_install_reading_triggers() returns void language plpgsql as $$
begin
  drop trigger if exists sluice_reading_notify on slu_reading;
  create trigger sluice_reading_notify after insert on slu_reading
    for each statement execute function sluice_notify_reading();
  drop trigger if exists sluice_reading_change on slu_reading;
  create trigger sluice_reading_change after update or delete on slu_reading
    for each statement execute function sluice_notify_reading_change();
  drop trigger if exists sluice_reading_truncate on slu_reading;
  create trigger sluice_reading_truncate after truncate on slu_reading
    for each statement execute function sluice_notify_reading_change();
  drop trigger if exists sluice_reading_version on slu_reading;
  create trigger sluice_reading_version before update on slu_reading
    for each row execute function sluice_reading_new_version();
  drop trigger if exists sluice_reading_own_xid on slu_reading;
  create trigger sluice_reading_own_xid before insert on slu_reading
    for each row when (new.xid is distinct from pg_current_xact_id()) execute function sluice_reading_new_version();
end $$;

-- A new partition [p_lo, p_hi). Made as a plain table and attached, which locks slu_reading only in SHARE UPDATE
-- EXCLUSIVE mode (writers go on). Rows the default partition caught in that range move in first with the same id,
-- xid and values, in the same transaction: no reader sees a difference. Returns the name, or null if it exists.
create or replace function sluice_add_partition(p_lo timestamp, p_hi timestamp) returns text language plpgsql as $$
declare
  n text := 'slu_reading_p' || to_char(p_lo, 'YYYYMMDD_HH24MI');
begin
  if exists (select 1 from sluice_partition where name = n) then return null; end if;
  execute format('create table %I (like slu_reading including defaults)', n);
  if to_regclass('slu_reading_default') is not null then
    execute format('with m as (delete from slu_reading_default where t >= $1 and t < $2 returning *) insert into %I select * from m', n)
      using p_lo, p_hi;
  end if;
  execute format('alter table slu_reading attach partition %I for values from (%L) to (%L)', n, p_lo, p_hi);
  insert into sluice_partition (name, lo, hi) values (n, p_lo, p_hi);
  return n;
end $$;

-- Turns a partition cold: from now on its writes are noted in sluice_reading_late. CREATE TRIGGER waits for every
-- transaction that has written into the partition to end (SHARE ROW EXCLUSIVE against their ROW EXCLUSIVE).
create or replace function sluice_mark_cold(p_name text) returns void language plpgsql as $$
begin
  execute format('create trigger sluice_reading_late after insert or update on %I for each row execute function sluice_note_late()', p_name);
  update sluice_partition set cold_xid = pg_current_xact_id() where name = p_name;
end $$;

-- Retention: drops a whole partition. Its newest transaction becomes the horizon (cursors from before it get
-- 4410, as after sluice_prune), and the change counter moves (sql/006) so every gateway rebuilds what it derived
-- from the table. Returns the partition's estimated row count (counting a day of rows would cost a scan).
create or replace function sluice_drop_partition(p_name text) returns bigint language plpgsql as $$
declare
  top xid8;
  n bigint;
begin
  execute format('select max(xid) from %I', p_name) into top;
  select greatest(c.reltuples, 0)::bigint into n from pg_class c where c.oid = p_name::regclass;
  execute format('drop table %I', p_name);
  delete from sluice_partition where name = p_name;
  if top is not null then
    insert into sluice_horizon (purged_below) values (top)
      on conflict (only_row) do update set purged_below = greatest(sluice_horizon.purged_below, excluded.purged_below);
  end if;
  update sluice_reading_changes set seq = seq + 1;
  perform pg_notify('sluice_reading_change', 'delete');
  return n;
end $$;

-- During a takeover only: a row written into the old table with t at or after the cutoff would break the check
-- that lets the old table be attached without a scan under lock. Such rows (a writer's clock far ahead) wait
-- here and are inserted into the partitioned table right after the switch (src/db/takeover.ts).
create or replace function sluice_takeover_overflow() returns trigger language plpgsql as $$
begin
  insert into sluice_reading_overflow select new.*;
  return null;
end $$;
