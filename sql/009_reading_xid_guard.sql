-- sluice migration 009: a row's xid is always its writing transaction's.
-- The stream and every cache trust xid (sql/002, sql/006). It has a default, but an INSERT may still name it: a
-- restore of a dump taken on another cluster, or a writer listing every column. An xid above the current one
-- made the feed deliver that row on every read; a reused (id, xid) with other values made a cache answer one
-- SLU's reading for another's. So an INSERT that supplies another xid gets its own transaction's instead (the
-- same function an UPDATE goes through, sql/006). The WHEN clause is evaluated in C for each row; the function
-- only runs for such rows, so ordinary inserts (which take the default) pay no PL/pgSQL call (bench:trigger).
drop trigger if exists sluice_reading_own_xid on slu_reading;
create trigger sluice_reading_own_xid before insert on slu_reading
  for each row when (new.xid is distinct from pg_current_xact_id()) execute function sluice_reading_new_version();
