-- sluice migration 008: grant changes are seen without NOTIFY too.
-- Gateways reload a partner's grants when sql/004 NOTIFYs them. While the LISTEN connection is down (PostgreSQL
-- at max_connections, a network cut), a revoke would not take effect until it came back. Every grant change now
-- also bumps this counter, which the feed reads in every read (at least every FEED_POLL_INTERVAL_MS, with or
-- without LISTEN); a gateway whose LISTEN is down reloads all grants when it moves.
create table if not exists sluice_grant_changes (
  only_row boolean primary key default true check (only_row),
  seq      bigint  not null default 0
);
insert into sluice_grant_changes (only_row) values (true) on conflict do nothing;

create or replace function sluice_grant_counter() returns trigger language plpgsql as $$
begin
  update sluice_grant_changes set seq = seq + 1;
  return null;
end $$;

drop trigger if exists sluice_partner_grant_counter on sluice_partner_grant;
create trigger sluice_partner_grant_counter after insert or update or delete or truncate on sluice_partner_grant
  for each statement execute function sluice_grant_counter();
