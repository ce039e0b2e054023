-- sluice migration 002: what the live stream needs.

-- Catch-up and resume read "rows not visible in snapshot S" = xid >= xmax(S) or xid in xip(S), in (xid, id)
-- order, page by page: this index serves both the range and the paging.
create index if not exists slu_reading_xid_idx on slu_reading (xid, id);

-- One NOTIFY per inserting statement, not per row: the payload is the writing transaction's id, a wake-up
-- signal only (the gateway reads the rows themselves from the table, bounded by snapshots), so it is tiny and
-- always far under the 8000-byte limit however many rows the statement inserts. Identical payloads within a
-- transaction are folded by PostgreSQL, so a transaction of many statements costs one notification.
-- bench/trigger.ts compares this with a per-row trigger and with a transition-table trigger.
create or replace function sluice_notify_reading() returns trigger language plpgsql as $$
begin
  perform pg_notify('sluice_reading', pg_current_xact_id()::text);
  return null;
end $$;

drop trigger if exists sluice_reading_notify on slu_reading;
create trigger sluice_reading_notify after insert on slu_reading
  for each statement execute function sluice_notify_reading();

-- Retention: rows deleted by sluice_prune() can no longer be replayed; cursors from before the newest deleted
-- transaction are refused with SLUICE_ERR_CURSOR_EXPIRED instead of silently skipping what was deleted.
create table if not exists sluice_horizon (
  only_row boolean primary key default true check (only_row),
  purged_below xid8 not null
);

create or replace function sluice_prune(older_than interval) returns bigint language plpgsql as $$
declare
  n bigint;
  top xid8;
begin
  with gone as (
    delete from slu_reading where t < (now() at time zone 'utc') - older_than returning xid
  )
  select count(*), max(xid) into n, top from gone;
  if top is not null then
    insert into sluice_horizon (purged_below) values (top)
      on conflict (only_row) do update set purged_below = greatest(sluice_horizon.purged_below, excluded.purged_below);
  end if;
  return n;
end $$;
