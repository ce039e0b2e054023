// `npm run partners -- grant|revoke|list|log …`: who may read which SLU (table sluice_partner_grant).
// Changes reach running gateways through NOTIFY within a second; see README "Security".
import { parseArgs } from 'node:util';
import { grant, listGrants, partnerName, revoke } from '../access/grant-store.ts';
import { ConfigError, loadConfig } from '../config/config.ts';
import { openDatabase } from './database.ts';

const USAGE = `usage:
  npm run partners -- grant  <partner> <slu_ids|all>    e.g. grant acme 1,2,3   or   grant acme all
  npm run partners -- revoke <partner> <slu_ids|all>    revoke listed SLUs, or the every-SLU grant
  npm run partners -- revoke <partner> --everything     every grant of the partner (it gets 403 from now on)
  npm run partners -- list   [partner]
  npm run partners -- log    [partner] [--limit N]      the audit trail of grant changes
<partner> is a client certificate's subject CN, or its SHA-256 fingerprint (sha256:<hex> or AB:CD:…) to pin one
certificate. Uses DATABASE_URL, or the embedded database of \`npm start\`.`;

/** "1,2,3" → [1,2,3]; "all" → [null]. Throws on anything else. */
export function parseSluList(text: string | undefined): Array<number | null> {
  if (text === undefined) throw new Error('missing <slu_ids|all>');
  if (text === 'all') return [null];
  return text.split(',').map((p) => {
    const s = p.trim();
    if (!/^\d{1,10}$/.test(s) || Number(s) > 2_147_483_647) throw new Error(`slu_ids must be "all" or comma-separated non-negative integers, got ${JSON.stringify(s)}`);
    return Number(s);
  });
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { everything: { type: 'boolean' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  const [cmd, who, what] = positionals;
  if (values.help || !cmd) {
    console.log(USAGE);
    return cmd || values.help ? 0 : 2;
  }
  if (!['grant', 'revoke', 'list', 'log'].includes(cmd)) throw new Error(`unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
  if ((cmd === 'grant' || cmd === 'revoke') && !who) throw new Error(`missing <partner>\n${USAGE}`);
  const partner = who === undefined ? undefined : partnerName(who);
  const slus = cmd === 'grant' || (cmd === 'revoke' && !values.everything) ? parseSluList(what) : [];
  const db = await openDatabase(loadConfig());
  try {
    if (cmd === 'grant') {
      let added = 0;
      for (const s of slus) if (await grant(db.pool, partner as string, s)) added++;
      console.log(`granted ${partner} ${what === 'all' ? 'every SLU' : `slu_id ${what}`} (${added} new, ${slus.length - added} already granted)`);
    } else if (cmd === 'revoke') {
      let removed = 0;
      if (values.everything) removed = await revoke(db.pool, partner as string, null, true);
      else for (const s of slus) removed += await revoke(db.pool, partner as string, s);
      console.log(`revoked ${removed} grant(s) of ${partner}${removed === 0 ? ' (it had none of those)' : ''}`);
    } else if (cmd === 'list') {
      const rows = await listGrants(db.pool, partner);
      if (rows.length === 0) console.log(partner ? `${partner} has no grants` : 'no grants');
      const byPartner = new Map<string, string[]>();
      for (const r of rows) byPartner.set(r.partner, [...(byPartner.get(r.partner) ?? []), r.sluId === null ? 'all' : String(r.sluId)]);
      for (const [p, s] of byPartner) console.log(`${p}\t${s.join(',')}`);
    } else {
      const limit = Number(values.limit ?? 50);
      const res = await db.pool.query<{ at: Date; action: string; partner: string; slu_id: number | null; actor: string }>(
        `select at, action, partner, slu_id, actor from sluice_partner_grant_log where $1::text is null or partner = $1 order by at desc limit $2`,
        [partner ?? null, Number.isInteger(limit) && limit > 0 ? limit : 50],
      );
      for (const r of res.rows) console.log(`${r.at.toISOString()}\t${r.action}\t${r.partner}\t${r.slu_id ?? 'all'}\tby ${r.actor}`);
    }
  } finally {
    await db.close();
  }
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `partners: ${(err as Error).message}`);
  process.exitCode = 1;
}
