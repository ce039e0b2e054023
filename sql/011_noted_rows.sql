-- sluice migration 011: the stream's read of the noted transactions (sql/010) plans only the partitions they wrote.
--
-- As one join, "rows of the noted transactions, t below the hot bound" was planned over every cold partition
-- (pruned only when run): with 400 hourly partitions the feed's read went from 0.7 ms to 27 ms, all planning. Here
-- each noted transaction's rows are read by a statement planned with its own t range as constants, so it names
-- only the partitions that range touches. The function is STABLE: every statement in it sees the snapshot of the
-- statement that calls it, so the feed's read stays one consistent snapshot.
--
-- Arguments: the "not in S" bounds (lowest, xmax, xip of the snapshot read from), the hot bound (rows at or after
-- it are read directly, not here), at most `lim` rows; for a catch-up page also: only transactions below
-- upto_xmax and visible in `upto`, after (after_xid, after_id), only slu_ids. Rows come in (xid, id) order, with
-- the reading columns by name (not slu_reading's row type, which a takeover renames away with the old table).
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
begin
  for n in
    select l.xid, l.lo, l.hi from sluice_reading_late l
    where l.xid >= p_lowest and (l.xid >= p_xmax or l.xid = any(p_xip))
      and (p_upto_xmax is null or l.xid < p_upto_xmax) and (p_after_xid is null or l.xid >= p_after_xid)
      and l.lo < p_hot
    order by l.xid
  loop
    exit when got >= p_lim;
    -- xid as a range, not "=": on skewed statistics (a legacy partition's rows all share xid 1) "=" made the
    -- planner walk the id index instead of (xid, id).
    return query execute format(
      'select r.slu_id, r.t, r.p1, r.p2, r.p3, r.k1, r.k2, r.k3, r.a1, r.a2, r.a3, r.v1, r.v2, r.v3, r.id, r.xid
       from slu_reading r where r.xid >= $1 and r.xid <= $1 and r.t >= %L and r.t <= %L and r.t < %L
         and ($2::pg_snapshot is null or pg_visible_in_snapshot(r.xid, $2))
         and ($3::xid8 is null or (r.xid, r.id) > ($3, $4))
         and ($5::int[] is null or r.slu_id = any($5))
       order by r.xid, r.id limit $6', n.lo, n.hi, p_hot)
      using n.xid, p_upto, p_after_xid, p_after_id, p_slu_ids, p_lim - got;
    get diagnostics k = row_count;
    got := got + k;
  end loop;
end $$;
