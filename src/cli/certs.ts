// `npm run certs` creates the dev CA + server + demo partner set (whatever is missing);
// `npm run certs -- client <partner> [--password P] [--days N]` issues a partner certificate.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.ts';
import { certPaths, ensureDevCerts, issuePartner, loadCa } from '../tls/certificates.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { password: { type: 'string' }, days: { type: 'string' }, rsa: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
});
const usage = 'usage: npm run certs                      create the dev CA, server and demo certificates if missing\n' +
  '       npm run certs -- client <partner> [--password P] [--days N] [--rsa]\n';
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
  } else {
    process.stderr.write(usage);
    process.exit(2);
  }
} catch (err) {
  console.error(`certs: ${(err as Error).message}`);
  process.exit(1);
}
