-- sluice migration 007: a clock for transaction ids, so a resume cursor's age can be told in time.
-- A cursor is a snapshot: it says which transactions had committed, not when. Gateways record the current
-- transaction id every minute here; a cursor older than REPLAY_WINDOW_S (its xmax below the newest mark that
-- old) or older than the oldest mark (e.g. "1:1:", which is well-formed and would replay the whole table) is
-- refused with 4410 instead of scanning everything since. The first mark is the migration's own.
create table if not exists sluice_xid_clock (
  xid xid8        primary key,
  at  timestamptz not null default now()
);
create index if not exists sluice_xid_clock_at_idx on sluice_xid_clock (at);
insert into sluice_xid_clock (xid) select pg_current_xact_id() where not exists (select 1 from sluice_xid_clock);
