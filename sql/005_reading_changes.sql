-- sluice migration 005: tell gateways when readings change other than by INSERT.
-- Gateways keep derived state in memory (the newest reading per SLU for /latest, serialised /rows bodies) that
-- stays right as long as readings are only inserted: the feed sees every insert. A DELETE (sluice_prune, an
-- operator), an UPDATE or a TRUNCATE is announced here, once per statement, so every gateway drops that state
-- and rebuilds it from the table.
create or replace function sluice_notify_reading_change() returns trigger language plpgsql as $$
begin
  perform pg_notify('sluice_reading_change', lower(tg_op));
  return null;
end $$;

drop trigger if exists sluice_reading_change on slu_reading;
create trigger sluice_reading_change after update or delete on slu_reading
  for each statement execute function sluice_notify_reading_change();
drop trigger if exists sluice_reading_truncate on slu_reading;
create trigger sluice_reading_truncate after truncate on slu_reading
  for each statement execute function sluice_notify_reading_change();
