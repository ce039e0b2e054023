-- sluice migration 001: the legacy reading table, made safe to add to an existing legacy database.
-- Legacy writers insert plain rows (insert into slu_reading (slu_id, t, p1, ...) values ...); nothing here asks
-- them to change. The legacy columns come first, in the legacy order, so positional inserts keep working too.
create table if not exists slu_reading (
  slu_id integer      not null,
  t      timestamp(6) not null default (now() at time zone 'utc'),
  p1 real, p2 real, p3 real,
  k1 real, k2 real, k3 real,
  a1 real, a2 real, a3 real,
  v1 integer, v2 integer, v3 integer
);

-- When the table already existed (a legacy database), make sure t defaults to UTC now like a fresh one.
alter table slu_reading alter column t set default (now() at time zone 'utc');

-- id: a stable key and tie-breaker for equal t (paging, ordering). Generated, so writers never supply it.
alter table slu_reading add column if not exists id bigint generated always as identity;

-- xid: the writing transaction. Together with snapshots this gives the stream's commit-order cursor even when
-- transactions commit out of id order (see docs/stream.md). Existing rows get the migrating transaction's id.
alter table slu_reading add column if not exists xid xid8 not null default pg_current_xact_id();

do $$
begin
  if not exists (select 1 from pg_constraint where conrelid = 'slu_reading'::regclass and contype = 'p') then
    alter table slu_reading add constraint slu_reading_pkey primary key (id);
  end if;
end $$;

-- Serves /rows (newest N of one SLU), /time (a t range of one SLU, newest first) and /latest (loose index scan:
-- one descent per SLU instead of a sort of the whole table).
-- (Skipped when the later covering index already exists: a legacy table taken over online has it built
-- concurrently beforehand, src/db/takeover.ts, and this build would hold a write lock.)
do $$
begin
  if to_regclass('slu_reading_slu_t_v_idx') is null then
    create index if not exists slu_reading_slu_t_idx on slu_reading (slu_id, t desc, id desc);
  end if;
end $$;
