// `npx sluice tail --slu 1,2 --cert … --key … --ca … [--url …] [--since …] [--format json|table]`
// Prints live readings; survives gateway restarts and disconnects without gaps (the client library resumes
// with its cursor). The last cursor is printed to stderr on exit, to continue later with --since.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SluiceClient, SluiceStreamError, type Reading } from '../client/sluice-client.ts';

const USAGE = `usage: npx sluice tail [--slu 1,2,3] --cert FILE --key FILE --ca FILE [options]
  --url URL         gateway (default https://localhost:8443/cityxchange)
  --slu LIST        SLU ids, comma-separated (default: every SLU you are granted)
  --since CURSOR    start after this cursor (printed by an earlier run) instead of now
  --format F        json (one reading per line, default) or table
  --cert/--key/--ca the partner certificate and key (PEM) and the CA of the gateway's certificate
Defaults for the certificate files: certs/clients/demo.crt, certs/clients/demo.key, certs/ca.crt.`;

const COLUMNS = ['slu_id', 't', 'v1', 'v2', 'v3', 'a1', 'a2', 'a3', 'p1', 'p2', 'p3', 'k1', 'k2', 'k3'] as const;
const WIDTH: Record<string, number> = { slu_id: 8, t: 26 };

function table(r: Reading): string {
  return COLUMNS.map((c) => String(r[c] ?? '').padStart(WIDTH[c] ?? 11)).join(' ');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      url: { type: 'string' }, slu: { type: 'string' }, since: { type: 'string' }, format: { type: 'string' },
      cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals[0] !== 'tail') {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const format = values.format ?? 'json';
  if (format !== 'json' && format !== 'table') throw new Error(`--format must be json or table, got ${JSON.stringify(format)}`);
  const sluIds = values.slu
    ? values.slu.split(',').map((s) => {
        if (!/^\d{1,10}$/.test(s.trim())) throw new Error(`--slu must be comma-separated non-negative integers, got ${JSON.stringify(s)}`);
        return Number(s);
      })
    : [];
  const read = (f: string, what: string) => {
    try {
      return readFileSync(f);
    } catch (err) {
      throw new Error(`cannot read ${what} ${f}: ${(err as NodeJS.ErrnoException).code}`);
    }
  };
  const client = new SluiceClient({
    url: values.url ?? 'https://localhost:8443/cityxchange',
    cert: read(values.cert ?? 'certs/clients/demo.crt', '--cert'),
    key: read(values.key ?? 'certs/clients/demo.key', '--key'),
    ca: read(values.ca ?? 'certs/ca.crt', '--ca'),
    sluIds,
    ...(values.since ? { since: values.since } : {}),
  });
  client.on('connected', ({ resumed }) => console.error(resumed ? `# resumed (reconnect ${client.reconnects})` : '# connected'));
  client.on('disconnected', ({ code, reason, retryInMs }) => console.error(`# disconnected (${code}${reason ? ` ${reason}` : ''}); resuming in ${retryInMs} ms`));
  client.on('error', (err) => console.error(`# ${err.message}`));
  const stop = () => client.close();
  process.once('SIGINT', stop).once('SIGTERM', stop);
  if (format === 'table') console.log(COLUMNS.map((c) => c.padStart(WIDTH[c] ?? 11)).join(' '));
  try {
    for await (const r of client.readings()) console.log(format === 'json' ? JSON.stringify(r) : table(r));
  } finally {
    if (client.cursor) console.error(`# cursor: ${client.cursor}  (continue with --since '${client.cursor}')`);
  }
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  console.error(`sluice: ${err instanceof SluiceStreamError ? `${err.code}: ${err.message}` : (err as Error).message}`);
  process.exitCode = 1;
}
