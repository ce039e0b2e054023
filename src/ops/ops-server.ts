import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A health report: `ready` decides the /readyz status; everything else is shown as is. */
export interface Health {
  readonly ready: boolean;
  readonly [key: string]: unknown;
}

/**
 * The operator port: plain HTTP on loopback by default, no client certificate, so load balancers and probes
 * can reach it. /healthz: the process is up. /readyz: 200 only while the database answers and LISTEN is in
 * place (a gateway that cannot stream live should not get new clients).
 */
export async function startOpsServer(opts: { host: string; port: number; health: () => Health | Promise<Health>; extra?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean }) {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      Promise.resolve()
        .then(opts.health)
        .then(
          (h) => send(h.ready ? 200 : 503, { status: h.ready ? 'ready' : 'not ready', ...h }),
          (err: Error) => send(503, { status: 'not ready', ready: false, error: err.message }),
        );
      return;
    }
    if (opts.extra?.(req, res)) return;
    send(404, { statusCode: 404, code: 'SLUICE_ERR_NOT_FOUND', message: 'ops endpoints: /healthz, /readyz' });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(opts.port, opts.host, () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
