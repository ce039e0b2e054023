// The peer architecture for bench:stream, built the way pg_eventserv and most hand-written gateways work: a
// per-row trigger NOTIFYs each row as JSON (bench/stream.ts installs it for this phase), one LISTEN connection,
// and each notification is sent straight to the WebSocket clients of that row's SLU. No cursor, no resume, no
// batching beyond what ws does, no catch-up after a lost notification. Same mutual TLS, same ws library.
// Runs as its own process, like sluice's gateway. Plain JavaScript: started with `node`, no build step.
// argv: <database url> <ca file> <cert file> <key file>; prints {"port": N} on stdout once listening.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import pg from 'pg';
import { WebSocketServer } from 'ws';

const [url, caFile, certFile, keyFile] = process.argv.slice(2);
const server = https.createServer({
  ca: readFileSync(caFile), cert: readFileSync(certFile), key: readFileSync(keyFile), requestCert: true, rejectUnauthorized: true,
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
/** slu_id -> sockets subscribed to it. */
const bySlu = new Map();
wss.on('connection', (ws, req) => {
  const ids = (new URL(req.url ?? '/', 'https://x').searchParams.get('slu_id') ?? '').split(',').filter(Boolean).map(Number);
  for (const id of ids) {
    let set = bySlu.get(id);
    if (!set) bySlu.set(id, (set = new Set()));
    set.add(ws);
  }
  ws.on('close', () => { for (const id of ids) bySlu.get(id)?.delete(ws); });
  ws.on('error', () => undefined);
});

const listener = new pg.Client({ connectionString: url });
await listener.connect();
listener.on('notification', (n) => {
  const row = JSON.parse(n.payload);
  const subs = bySlu.get(row.slu_id);
  if (!subs || subs.size === 0) return;
  const frame = '{"type":"readings","readings":[' + n.payload + ']}';
  for (const ws of subs) if (ws.bufferedAmount < 4 << 20) ws.send(frame);
});
await listener.query('listen bench_peer');
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('SIGTERM', () => { listener.end().finally(() => process.exit(0)); });
