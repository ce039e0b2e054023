-- sluice migration 013: partitions, hardened after an outside review (test/integration/review/partition-*.test.ts).

-- 1. Writers need INSERT on slu_reading and nothing else. The id default draws from a sequence (identity columns
--    on partitioned tables need PostgreSQL 17): anyone may draw from it (it reveals nothing; ids are not secret).
--    The note trigger writes sluice_reading_late and the takeover's aside trigger sluice_reading_overflow as the
--    owner (SECURITY DEFINER, with this schema pinned), not as the writer.
do $$
begin
  if to_regclass('sluice_reading_id_seq') is not null then
    execute 'grant usage on sequence sluice_reading_id_seq to public';
  end if;
  execute format('alter function sluice_note_late() security definer set search_path = %I, pg_temp', current_schema());
  execute format('alter function sluice_takeover_overflow() security definer set search_path = %I, pg_temp', current_schema());
end $$;

-- 2. A DELETE, UPDATE or TRUNCATE aimed at one partition (not at slu_reading) moves the change counter too:
--    statement triggers of slu_reading fire only for statements on slu_reading itself.
create or replace function sluice_install_partition_triggers(p_name text) returns void language plpgsql as $$
begin
  execute format('drop trigger if exists sluice_reading_change on %I', p_name);
  execute format('create trigger sluice_reading_change after update or delete on %I for each statement execute function sluice_notify_reading_change()', p_name);
  execute format('drop trigger if exists sluice_reading_truncate on %I', p_name);
  execute format('create trigger sluice_reading_truncate after truncate on %I for each statement execute function sluice_notify_reading_change()', p_name);
end $$;

do $$
declare
  p record;
begin
  if (select relkind from pg_class where oid = to_regclass('slu_reading')) = 'p' then
    for p in select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'slu_reading'::regclass loop
      perform sluice_install_partition_triggers(p.relname);
    end loop;
  end if;
end $$;

-- 3. A new partition: rows the default partition holds for its range move in while the default partition is
--    locked against writers (SHARE: a row written between the move and the ATTACH's check failed the whole
--    round), and it gets the partition statement triggers.
create or replace function sluice_add_partition(p_lo timestamp, p_hi timestamp) returns text language plpgsql as $$
declare
  n text := 'slu_reading_p' || to_char(p_lo, 'YYYYMMDD_HH24MI');
begin
  if exists (select 1 from sluice_partition where name = n) then return null; end if;
  execute format('create table %I (like slu_reading including defaults)', n);
  if to_regclass('slu_reading_default') is not null then
    lock table slu_reading_default in share mode;
    execute format('with m as (delete from slu_reading_default where t >= $1 and t < $2 returning *) insert into %I select * from m', n)
      using p_lo, p_hi;
  end if;
  execute format('alter table slu_reading attach partition %I for values from (%L) to (%L)', n, p_lo, p_hi);
  perform sluice_install_partition_triggers(n);
  insert into sluice_partition (name, lo, hi) values (n, p_lo, p_hi);
  return n;
end $$;

-- 4. Retention takes slu_reading's lock before it reads the partition's newest transaction: a writer still
--    writing into it when the drop began has finished by then, so the horizon covers its rows too.
create or replace function sluice_drop_partition(p_name text) returns bigint language plpgsql as $$
declare
  top xid8;
  n bigint;
begin
  lock table slu_reading in access exclusive mode;
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

-- 5. The noted rows, without visiting every note on every page: 20,000 late single-row transactions made every
--    replay page plan 20,000 statements (seconds per page). The transaction the "after" mark is in is read on its
--    own, from the mark on (an index bound: a page of a 200,000-row import costs a page); when that fills the page
--    nothing else is read. The later ones are read one statement per noted range (a cold partition, a day of the
--    default partition) for all its transactions at once, and PostgreSQL sorts those few ranges' rows.
create or replace function sluice_noted_rows(
  p_lowest xid8, p_xmax xid8, p_xip xid8[], p_hot timestamp, p_lim integer,
  p_upto_xmax xid8 default null, p_upto pg_snapshot default null, p_after_xid xid8 default null, p_after_id bigint default null,
  p_slu_ids integer[] default null
) returns table (
  slu_id integer, t timestamp(6), p1 real, p2 real, p3 real, k1 real, k2 real, k3 real, a1 real, a2 real, a3 real,
  v1 integer, v2 integer, v3 integer, id bigint, xid xid8
) language plpgsql stable
  -- The stream's connections run with enable_sort off (src/db/database.ts); each range's rows are sorted here.
  set enable_sort = on
as $$
#variable_conflict use_column
declare
  n record;
  k bigint;
  ranges text;
  top timestamp := coalesce((select max(hi) from sluice_partition), 'infinity');
begin
  if p_after_xid is not null then
    select string_agg(case when l.lo = l.hi then format('r.t = %L', l.lo) else format('(r.t >= %L and r.t < %L)', l.lo, l.hi) end, ' or ')
      into ranges
      from sluice_reading_late l
      where l.xid = p_after_xid and (l.lo < p_hot or l.hi >= top)
        and l.xid >= p_lowest and (l.xid >= p_xmax or l.xid = any(p_xip)) and (p_upto_xmax is null or l.xid < p_upto_xmax);
    if ranges is not null then
      return query execute format(
        'select r.slu_id, r.t, r.p1, r.p2, r.p3, r.k1, r.k2, r.k3, r.a1, r.a2, r.a3, r.v1, r.v2, r.v3, r.id, r.xid
         from slu_reading r where r.xid = $1 and r.id > $2 and (%s) and (r.t < %L or r.t >= %L)
           and ($3::pg_snapshot is null or pg_visible_in_snapshot(r.xid, $3))
           and ($4::int[] is null or r.slu_id = any($4))
         order by r.xid, r.id limit $5', ranges, p_hot, top)
        using p_after_xid, p_after_id, p_upto, p_slu_ids, p_lim;
      get diagnostics k = row_count;
      if k >= p_lim then return; end if;
    end if;
  end if;
  for n in
    select l.lo, l.hi, array_agg(l.xid order by l.xid) as xids
    from sluice_reading_late l
    where l.xid >= p_lowest and (l.xid >= p_xmax or l.xid = any(p_xip))
      and (p_upto_xmax is null or l.xid < p_upto_xmax) and (p_after_xid is null or l.xid > p_after_xid)
      and (l.lo < p_hot or l.hi >= top)
    group by l.lo, l.hi
  loop
    return query execute format(
      'select r.slu_id, r.t, r.p1, r.p2, r.p3, r.k1, r.k2, r.k3, r.a1, r.a2, r.a3, r.v1, r.v2, r.v3, r.id, r.xid
       from slu_reading r where r.xid = any($1) and %s and (r.t < %L or r.t >= %L)
         and ($2::pg_snapshot is null or pg_visible_in_snapshot(r.xid, $2))
         and ($3::int[] is null or r.slu_id = any($3))
       order by r.xid, r.id limit $4',
      case when n.lo = n.hi then format('r.t = %L', n.lo) else format('r.t >= %L and r.t < %L', n.lo, n.hi) end, p_hot, top)
      using n.xids, p_upto, p_slu_ids, p_lim;
  end loop;
end $$;

-- 6. The note of a write into the default partition: the day of t, up to the last day a timestamp can hold
--    (the day after 294276-12-31 does not exist: that row's note runs to infinity).
create or replace function sluice_note_late() returns trigger language plpgsql security definer as $$
declare
  lo timestamp;
  hi timestamp;
begin
  if tg_nargs = 2 then
    lo := tg_argv[0]::timestamp;
    hi := tg_argv[1]::timestamp;
  else
    lo := date_trunc('day', new.t);
    hi := case when lo < timestamp '294276-12-31' then lo + interval '1 day' else 'infinity' end;
  end if;
  insert into sluice_reading_late (xid, lo, hi) values (pg_current_xact_id(), lo, hi) on conflict do nothing;
  return null;
end $$;
do $$
begin
  execute format('alter function sluice_note_late() set search_path = %I, pg_temp', current_schema());
end $$;

-- 7. A restore onto another cluster keeps the source's xids (pg_dump loads the data before it makes the
--    triggers): rows "from the future" would be delivered on every feed read. migrate() repairs that at start
--    (src/db/restore.ts), rewriting such xids to 1 (older than every snapshot) with the version trigger told to
--    let it be.
create or replace function sluice_reading_new_version() returns trigger language plpgsql as $$
begin
  if current_setting('sluice.repairing_xids', true) = 'on' then return new; end if;
  new.xid := pg_current_xact_id();
  return new;
end $$;
