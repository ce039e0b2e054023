-- sluice migration 015: what an outside attack on sql/014 found (test/integration/review/fast-path-*.test.ts).
--
-- 1. sluice_notify_rows() signs rows with the owner's key. Anyone could EXECUTE it by default and so attach it,
--    as a trigger, to a temporary table of their own and have any rows signed. EXECUTE is revoked from PUBLIC
--    (firing a trigger checks no privilege; only creating one does), and the function signs only rows of
--    slu_reading or one of its partitions; anywhere else it does nothing.
-- 2. An INSERT aimed at one partition fires that partition's statement triggers, not slu_reading's: it sent no
--    NOTIFY, arrived with the next poll, and could be overtaken by the same writer's later INSERT. Every
--    partition now carries the insert trigger too (added to existing ones by src/db/migrate.ts, with short lock
--    attempts; new partitions get it from sluice_install_partition_triggers).

revoke execute on function sluice_notify_rows() from public;

create or replace function sluice_notify_rows() returns trigger language plpgsql security definer
  set datestyle = 'ISO, YMD' set extra_float_digits = 1 as $$
declare
  k bytea;
  body text := '';
  line text;
begin
  if tg_relid <> 'slu_reading'::regclass
     and not exists (select 1 from pg_inherits i where i.inhrelid = tg_relid and i.inhparent = 'slu_reading'::regclass) then
    return null;
  end if;
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
revoke execute on function sluice_notify_rows() from public;

create or replace function sluice_install_partition_triggers(p_name text) returns void language plpgsql as $$
begin
  execute format('drop trigger if exists sluice_reading_change on %I', p_name);
  execute format('create trigger sluice_reading_change after update or delete on %I for each statement execute function sluice_notify_reading_change()', p_name);
  execute format('drop trigger if exists sluice_reading_truncate on %I', p_name);
  execute format('create trigger sluice_reading_truncate after truncate on %I for each statement execute function sluice_notify_reading_change()', p_name);
  execute format('drop trigger if exists sluice_reading_notify on %I', p_name);
  execute format('create trigger sluice_reading_notify after insert on %I referencing new table as new_rows for each statement execute function sluice_notify_rows()', p_name);
end $$;
