import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { CertAndKey } from '../../src/tls/certificates.ts';

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json<T = unknown>(): T;
}

/** A keep-alive HTTPS client presenting a partner certificate (or none). */
export function httpsClient(opts: { port: number; ca: string; client?: CertAndKey; host?: string }) {
  const agent = new https.Agent({
    keepAlive: true,
    ca: opts.ca,
    ...(opts.client ? { cert: opts.client.certPem, key: opts.client.keyPem } : {}),
  });
  return {
    get(path: string): Promise<HttpResult> {
      return new Promise((resolve, reject) => {
        const req = https.request({ host: opts.host ?? '127.0.0.1', servername: 'localhost', port: opts.port, path, agent, method: 'GET' }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}

/**
 * One WebSocket upgrade request over a new TLS connection, presenting `client`: resolves with 101 (the socket
 * is closed at once) or the refusal's status and body, which a WebSocket client library would not show.
 */
export function upgradeRequest(opts: { port: number; ca: string; client: CertAndKey; path?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', servername: 'localhost', port: opts.port, path: opts.path ?? '/cityxchange/stream', agent: false,
      ca: opts.ca, cert: opts.client.certPem, key: opts.client.keyPem,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
