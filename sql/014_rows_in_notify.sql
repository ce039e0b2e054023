-- sluice migration 014: a small statement's rows travel in its NOTIFY (issue 12, the stream's fast path).
--
-- Until now the NOTIFY was only a wake-up: the gateway then read the table (one round trip, ~1 ms of the ~2.7 ms
-- commit -> client). Now an inserting statement of at most 200 rows sends the rows themselves, in the very text the
-- feed's read returns (PACKED_READING of src/format/reading.ts, pinned in test/unit/rows-in-notify.test.ts), in
-- chunks under NOTIFY's 8000-byte limit. A gateway delivers them at once and records them in its cursor as
-- "these (xid, id) of a transaction the snapshot does not include yet"; its next read confirms them (docs/stream.md,
-- "The fast path"). Larger statements send the wake-up as before.
--
-- Anyone who can connect may NOTIFY any channel, so a payload is data only when it carries a MAC made with a key
-- that only the owner can read: sha256(key || sha256(body)) (the inner hash has a fixed length, so the outer one
-- cannot be extended). The trigger runs as the owner (SECURITY DEFINER) to read the key; writers still need only
-- INSERT. A gateway that cannot read the key simply ignores payloads and reads the table, as before.

create table if not exists sluice_notify_key (
  only_row boolean primary key default true check (only_row),
  key bytea not null
);
revoke all on sluice_notify_key from public;
-- 32 bytes from the server's strong random source (gen_random_uuid, PostgreSQL 13+): 244 random bits.
insert into sluice_notify_key (key)
  values (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
  on conflict (only_row) do nothing;

-- The text settings are pinned so the payload is the text the gateway's own connections read (src/db/pool.ts
-- pins the same), whatever the writer's session has set: DateStyle for t, extra_float_digits for the reals.
-- A function of its own (sluice_notify_reading, the wake-up, stays as it was): the trigger is switched to it by
-- src/db/migrate.ts after this migration, with a short lock timeout, and until then inserts keep working.
create or replace function sluice_notify_rows() returns trigger language plpgsql security definer
  set datestyle = 'ISO, YMD' set extra_float_digits = 1 as $$
declare
  k bytea;
  body text := '';
  line text;
begin
  if (select count(*) from (select 1 from new_rows limit 201) s) > 200 then
    perform pg_notify('sluice_reading', pg_current_xact_id()::text);
    return null;
  end if;
  select key into k from sluice_notify_key;
  for line in
    select concat_ws(',', coalesce(r.p1::text, ''), coalesce(r.p2::text, ''), coalesce(r.p3::text, ''),
      coalesce(r.k1::text, ''), coalesce(r.k2::text, ''), coalesce(r.k3::text, ''), coalesce(r.a1::text, ''),
      coalesce(r.a2::text, ''), coalesce(r.a3::text, ''), coalesce(r.t::text, ''), coalesce(r.v1::text, ''),
      coalesce(r.v2::text, ''), coalesce(r.v3::text, ''), r.slu_id, r.id, r.xid)
    from new_rows r order by r.id
  loop
    -- 'r' + 64 hex characters of MAC + body must stay under 8000 bytes (ASCII: characters are bytes).
    if length(body) + length(line) > 7900 and body <> '' then
      perform pg_notify('sluice_reading', 'r' || encode(sha256(k || sha256(convert_to(body, 'UTF8'))), 'hex') || body);
      body := '';
    end if;
    body := body || E'\n' || line;
  end loop;
  if body <> '' then
    perform pg_notify('sluice_reading', 'r' || encode(sha256(k || sha256(convert_to(body, 'UTF8'))), 'hex') || body);
  end if;
  return null;
end $$;
do $$
begin
  execute format('alter function sluice_notify_rows() set search_path = %I, pg_temp', current_schema());
end $$;

-- The trigger now needs the statement's rows (a transition table). Takeovers install it through this function.
create or replace function sluice_install_reading_triggers() returns void language plpgsql as $$
begin
  drop trigger if exists sluice_reading_notify on slu_reading;
  create trigger sluice_reading_notify after insert on slu_reading
    referencing new table as new_rows for each statement execute function sluice_notify_rows();
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
