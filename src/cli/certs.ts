// `npm run certs` creates the dev CA + server + demo partner set (whatever is missing);
// `npm run certs -- client <partner> [--password P] [--days N]` issues a partner certificate.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.ts';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { certPaths, createCrl, ensureDevCerts, issuePartner, loadCa } from '../tls/certificates.ts';
import { normalizeSerial, revokedSerials } from '../tls/tls-material.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { password: { type: 'string' }, days: { type: 'string' }, rsa: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
});
const usage = 'usage: npm run certs                      create the dev CA, server and demo certificates if missing\n' +
  '       npm run certs -- client <partner> [--password P] [--days N] [--rsa]\n' +
  '       npm run certs -- revoke <partner>    add certs/clients/<partner>.crt to certs/ca.crl (set TLS_CRL=certs/ca.crl;\n' +
  '                                            a running gateway reloads it within seconds, or on SIGHUP)\n';
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const config = loadConfig();
const paths = certPaths(config.TLS_CA, config.TLS_CERT, config.TLS_KEY);
const [cmd, partner] = positionals;
try {
  if (cmd === undefined) {
    const written = await ensureDevCerts(paths);
    console.log(written.length ? `wrote:\n  ${written.join('\n  ')}` : 'certificates already exist; nothing to do');
  } else if (cmd === 'client' && partner) {
    if (!existsSync(paths.caKey)) await ensureDevCerts(paths);
    const days = values.days ? Number(values.days) : undefined;
    if (days !== undefined && !(Number.isInteger(days) && days > 0)) throw new TypeError('--days must be a positive integer');
    const b = await issuePartner(paths, await loadCa(paths), partner, {
      ...(values.password ? { password: values.password } : {}),
      ...(days ? { days } : {}),
      ...(values.rsa ? { keyType: 'rsa' as const } : {}),
    });
    console.log(`partner ${partner}:\n  ${b.crt}\n  ${b.key}\n  ${b.p12}  (password in ${b.p12PasswordFile})`);
    console.log(`a certificate grants nothing by itself: npm run partners -- grant ${partner} <slu_ids|all>`);
  } else if (cmd === 'revoke' && partner) {
    const crt = path.join(paths.clientsDir, `${partner}.crt`);
    const serial = new X509Certificate(await readFile(crt)).serialNumber;
    const crlFile = config.TLS_CRL ?? path.join(path.dirname(paths.ca), 'ca.crl');
    // Keep what the CRL already lists: revocation is forever.
    const listed = existsSync(crlFile) ? revokedSerials(await readFile(crlFile, 'utf8')) : [];
    const serials = [...new Set([...listed, normalizeSerial(serial)])];
    await writeFile(crlFile, await createCrl(await loadCa(paths), serials));
    console.log(`revoked ${crt} (serial ${serial}); ${crlFile} now lists ${serials.length} certificate(s)` +
      (config.TLS_CRL ? '' : `\nset TLS_CRL=${crlFile} for the gateway to use it`));
  } else {
    process.stderr.write(usage);
    process.exit(2);
  }
} catch (err) {
  console.error(`certs: ${(err as Error).message}`);
  process.exit(1);
}
