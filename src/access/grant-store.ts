import type pg from 'pg';
import { fingerprintName, isPinSpelling } from './grants.ts';

/** One row of sluice_partner_grant: slu_id null = every SLU. */
export interface GrantRow {
  readonly partner: string;
  readonly sluId: number | null;
  readonly grantedAt: Date;
  readonly grantedBy: string;
}

/**
 * A partner name as stored: a certificate CN as given, or a SHA-256 fingerprint in any usual spelling
 * (AB:CD:…, abcd…, sha256:…) normalised to 'sha256:<64 lowercase hex>'.
 */
export function partnerName(input: string): string {
  const s = input.trim();
  if (s.length === 0) throw new Error('partner name is empty');
  if (Buffer.byteLength(s) > 1000) throw new Error('partner name is longer than 1000 bytes');
  const hex = s.replace(/^sha256:/i, '').replace(/:/g, '');
  if (isPinSpelling(s)) {
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`not a SHA-256 fingerprint: ${s}`);
    return fingerprintName(s);
  }
  return s;
}

/** Grants `partner` one SLU, or every SLU (null). Returns false when it already had that grant. */
export async function grant(db: pg.Pool | pg.PoolClient, partner: string, sluId: number | null): Promise<boolean> {
  const res = await db.query(`insert into sluice_partner_grant (partner, slu_id) values ($1, $2) on conflict do nothing`, [partnerName(partner), sluId]);
  return res.rowCount === 1;
}

/** Revokes one SLU, the every-SLU grant (null), or with `everything` every grant of the partner. Returns rows removed. */
export async function revoke(db: pg.Pool | pg.PoolClient, partner: string, sluId: number | null, everything = false): Promise<number> {
  const name = partnerName(partner);
  const res = everything
    ? await db.query(`delete from sluice_partner_grant where partner = $1`, [name])
    : await db.query(`delete from sluice_partner_grant where partner = $1 and slu_id is not distinct from $2`, [name, sluId]);
  return res.rowCount ?? 0;
}

/** Every grant (of one partner, when given), ordered by partner then SLU (the every-SLU grant first). */
export async function listGrants(db: pg.Pool | pg.PoolClient, partner?: string): Promise<GrantRow[]> {
  const res = await db.query<{ partner: string; slu_id: number | null; granted_at: Date; granted_by: string }>(
    `select partner, slu_id, granted_at, granted_by from sluice_partner_grant
     where $1::text is null or partner = $1 order by partner, slu_id nulls first`,
    [partner === undefined ? null : partnerName(partner)],
  );
  return res.rows.map((r) => ({ partner: r.partner, sluId: r.slu_id, grantedAt: r.granted_at, grantedBy: r.granted_by }));
}
