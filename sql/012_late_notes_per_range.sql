-- sluice migration 012: a late write costs one index probe per row, not one row version per row.
--
-- sql/010 noted each late-writing transaction once with the t range it wrote, widened row by row: an import of
-- 200,000 old readings in time order updated the same note 200,000 times (one new row version each, and a longer
-- chain to walk each time). The note is now (transaction, range) with a range known before the row: the cold
-- partition's own bounds (given to its trigger), or for the default partition the day of t. The first row of a
-- transaction in a range inserts the note; every further row finds it and does nothing.
alter table sluice_reading_late drop constraint if exists sluice_reading_late_pkey;
alter table sluice_reading_late add constraint sluice_reading_late_pkey primary key (xid, lo);

create or replace function sluice_note_late() returns trigger language plpgsql as $$
declare
  lo timestamp;
  hi timestamp;
begin
  if tg_nargs = 2 then
    lo := tg_argv[0]::timestamp;
    hi := tg_argv[1]::timestamp;
  else
    lo := date_trunc('day', new.t);
    hi := lo + interval '1 day';
  end if;
  insert into sluice_reading_late (xid, lo, hi) values (pg_current_xact_id(), lo, hi) on conflict do nothing;
  return null;
end $$;

create or replace function sluice_mark_cold(p_name text) returns void language plpgsql as $$
declare
  p record;
begin
  select coalesce(lo, '-infinity') as lo, hi into p from sluice_partition where name = p_name;
  execute format('create trigger sluice_reading_late after insert or update on %I for each row execute function sluice_note_late(%L, %L)',
    p_name, p.lo, p.hi);
  update sluice_partition set cold_xid = pg_current_xact_id() where name = p_name;
end $$;

-- Partitions already cold get the trigger with their bounds (dropped and made in this one transaction: no gap).
do $$
declare
  p record;
begin
  for p in select name, coalesce(lo, '-infinity') as lo, hi from sluice_partition where cold_xid is not null loop
    execute format('drop trigger if exists sluice_reading_late on %I', p.name);
    execute format('create trigger sluice_reading_late after insert or update on %I for each row execute function sluice_note_late(%L, %L)',
      p.name, p.lo, p.hi);
  end loop;
end $$;

-- One statement per noted transaction, over the ranges it wrote (OR'ed: PostgreSQL prunes to the partitions
-- they touch), so rows of one transaction come in id order even when it wrote into several ranges. The direct
-- part of the read (src/db/since.ts) covers [hot, end of the last partition); this covers the rest: cold
-- partitions and the default partition, whose every row is noted (so the direct part never walks an import of
-- old readings sitting there: that made each replay page of one 200,000-row import cost 35 ms).
create or replace function sluice_noted_rows(
  p_lowest xid8, p_xmax xid8, p_xip xid8[], p_hot timestamp, p_lim integer,
  p_upto_xmax xid8 default null, p_upto pg_snapshot default null, p_after_xid xid8 default null, p_after_id bigint default null,
  p_slu_ids integer[] default null
) returns table (
  slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real, a1 real, a2 real, a3 real,
  v1 integer, v2 integer, v3 integer, id bigint, xid xid8
) language plpgsql stable as $$
#variable_conflict use_column
declare
  n record;
  got bigint := 0;
  k bigint;
  -- Where the partitions end: the direct part reads [p_hot, top), so rows past it (in the default partition) are
  -- read here. Same snapshot as the caller's (STABLE), so the same figure as the caller's direct part used.
  top timestamp := coalesce((select max(hi) from sluice_partition), 'infinity');
begin
  for n in
    select l.xid, string_agg(format('(r.t >= %L and r.t <= %L)', l.lo, l.hi), ' or ') as ranges
    from sluice_reading_late l
    where l.xid >= p_lowest and (l.xid >= p_xmax or l.xid = any(p_xip))
      and (p_upto_xmax is null or l.xid < p_upto_xmax) and (p_after_xid is null or l.xid >= p_after_xid)
      and (l.lo < p_hot or l.hi >= top)
    group by l.xid
    order by l.xid
  loop
    exit when got >= p_lim;
    -- xid as a range, not "=": on skewed statistics (a legacy partition's rows all share xid 1) "=" made the
    -- planner walk the id index instead of (xid, id).
    return query execute format(
      'select r.slu_id, r.t, r.p1, r.p2, r.p3, r.k1, r.k2, r.k3, r.a1, r.a2, r.a3, r.v1, r.v2, r.v3, r.id, r.xid
       from slu_reading r where r.xid >= $1 and r.xid <= $1 and (%s) and (r.t < %L or r.t >= %L)
         and ($2::pg_snapshot is null or pg_visible_in_snapshot(r.xid, $2))
         and ($3::xid8 is null or (r.xid, r.id) > ($3, $4))
         and ($5::int[] is null or r.slu_id = any($5))
       order by r.xid, r.id limit $6', n.ranges, p_hot, top)
      using n.xid, p_upto, p_after_xid, p_after_id, p_slu_ids, p_lim - got;
    get diagnostics k = row_count;
    got := got + k;
  end loop;
end $$;
