-- sluice migration 004: which partner may read which SLU.
-- A partner is named by its client certificate's subject CN ('acme') or by the certificate's SHA-256
-- fingerprint ('sha256:<64 hex digits>', for pinning one certificate). slu_id null grants every SLU, present
-- and future. No row for a partner = no access (HTTP 403 / WebSocket 4403).
create table if not exists sluice_partner_grant (
  partner    text        not null check (partner <> '' and octet_length(partner) <= 1000 and (partner not like 'sha256:%' or partner ~ '^sha256:[0-9a-f]{64}$')),
  slu_id     integer     check (slu_id >= 0),
  granted_at timestamptz not null default now(),
  granted_by text        not null default current_user,
  constraint sluice_partner_grant_uniq unique nulls not distinct (partner, slu_id)
);

-- Every change is kept: who granted or revoked what, when (the audit trail an operator is asked for).
create table if not exists sluice_partner_grant_log (
  at       timestamptz not null default now(),
  action   text        not null check (action in ('grant', 'revoke')),
  partner  text        not null,
  slu_id   integer,
  actor    text        not null default current_user
);

-- Gateways cache grants per partner; this tells them (all processes, via LISTEN) which partner changed, so a
-- revoked grant stops the partner's stream within a second. The payload is the partner name (at most 1000
-- bytes by the check above, far under NOTIFY's 8000).
create or replace function sluice_grant_changed() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into sluice_partner_grant_log (action, partner, slu_id) values ('grant', new.partner, new.slu_id);
    perform pg_notify('sluice_grant', new.partner);
  elsif tg_op = 'DELETE' then
    insert into sluice_partner_grant_log (action, partner, slu_id) values ('revoke', old.partner, old.slu_id);
    perform pg_notify('sluice_grant', old.partner);
  else -- an UPDATE made by hand: a revoke of the old row and a grant of the new one
    insert into sluice_partner_grant_log (action, partner, slu_id) values ('revoke', old.partner, old.slu_id), ('grant', new.partner, new.slu_id);
    perform pg_notify('sluice_grant', old.partner);
    perform pg_notify('sluice_grant', new.partner);
  end if;
  return null;
end $$;

drop trigger if exists sluice_partner_grant_changed on sluice_partner_grant;
create trigger sluice_partner_grant_changed after insert or update or delete on sluice_partner_grant
  for each row execute function sluice_grant_changed();
