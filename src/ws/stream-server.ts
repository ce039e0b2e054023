import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type pg from 'pg';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { ErrorCodes, SluiceError } from '../errors.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { Hub } from '../hub/hub.ts';
import { decodeCursor } from '../stream/cursor.ts';
import { identityOf } from '../tls/identity.ts';
import { parseSluIdQuery } from './protocol.ts';
import { Session, type SessionLimits } from './session.ts';

export interface StreamServerOptions extends SessionLimits {
  /** Path of the endpoint, e.g. /cityxchange/stream. */
  readonly path: string;
  /** Largest text frame a client may send, bytes. */
  readonly maxPayloadBytes: number;
  /** Ping interval; a client that has not answered the previous ping is dropped, ms. */
  readonly heartbeatMs: number;
}

/**
 * The WebSocket endpoint on the HTTPS server's port. Authentication happens at the upgrade, before any
 * WebSocket exists: no verified client certificate, plain 401 (ws's noServer pattern). Query problems are
 * reported after the upgrade, as an error frame and a close code, because browsers cannot read HTTP bodies of
 * failed upgrades.
 */
export function createStreamServer(deps: { server: import('node:https').Server; hub: Hub; pool: pg.Pool; cache: ReadingCache; log: Logger; opts: StreamServerOptions }) {
  const { hub, pool, cache, log, opts } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes, perMessageDeflate: false, clientTracking: true });
  const sessions = new Map<WebSocket, Session>();

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname !== opts.path && url.pathname !== opts.path + '/') {
      return refuse(socket, 404, 'Not Found', { code: 'SLUICE_ERR_NOT_FOUND', message: `no WebSocket endpoint at ${url.pathname}; use ${opts.path}` });
    }
    const partner = identityOf(req.socket as TLSSocket);
    if (!partner) return refuse(socket, 401, 'Unauthorized', { code: 'SLUICE_ERR_NO_CLIENT_CERT', message: ErrorCodes.SLUICE_ERR_NO_CLIENT_CERT.message });
    wss.handleUpgrade(req, socket, head, (ws) => {
      const slus = parseSluIdQuery(url.searchParams.getAll('slu_id'));
      const sinceText = url.searchParams.get('since');
      const since = sinceText === null ? undefined : decodeCursor(sinceText);
      const session = new Session(ws, partner, slus.ok ? slus.ids : [], hub, pool, cache, opts, log);
      sessions.set(ws, session);
      ws.on('message', (data, isBinary) => session.onMessage(data as Buffer, isBinary));
      ws.on('pong', () => (session.alive = true));
      ws.on('error', (err) => log.debug({ partner: partner.cn, err: err.message }, 'stream socket error'));
      ws.on('close', () => {
        session.dispose();
        sessions.delete(ws);
      });
      log.info({ partner: partner.cn, slu_ids: slus.ok ? (slus.ids ?? 'all') : undefined, resume: since !== undefined }, 'stream connected');
      if (!slus.ok) return session.fail(paramError(slus.message));
      if (slus.ids && slus.ids.length > opts.maxSlus) return session.fail(tooMany(slus.ids.length, opts.maxSlus));
      if (sinceText !== null && !since) return session.fail(cursorError());
      void session.start(since);
    });
  };
  deps.server.on('upgrade', onUpgrade);

  const heartbeat = setInterval(() => {
    for (const [ws, s] of sessions) {
      if (!s.alive) {
        log.info({ partner: s.partner.cn }, 'stream peer did not answer ping; dropping');
        ws.terminate();
        continue;
      }
      s.alive = false;
      ws.ping();
    }
  }, opts.heartbeatMs);
  heartbeat.unref();

  return {
    get clients(): number {
      return sessions.size;
    },
    sessions: () => sessions.values(),
    /** Closes every client with 1012 (reconnect elsewhere with your cursor) and stops accepting. */
    async close(): Promise<void> {
      clearInterval(heartbeat);
      deps.server.off('upgrade', onUpgrade);
      for (const s of sessions.values()) s.close('SLUICE_ERR_GOING_AWAY', 'gateway restarting; reconnect with since=<your last cursor>');
      await new Promise<void>((resolve) => {
        const deadline = setTimeout(resolve, 2000);
        const check = () => (sessions.size === 0 ? (clearTimeout(deadline), resolve()) : setTimeout(check, 20));
        check();
      });
      for (const ws of sessions.keys()) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

function paramError(message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_PARAM', message, { parameter: 'slu_id' });
}
function tooMany(n: number, max: number): SluiceError {
  return new SluiceError('SLUICE_ERR_TOO_MANY_SLUS', `at most ${max} SLUs per connection, got ${n}; omit slu_id to receive all SLUs`);
}
function cursorError(): SluiceError {
  return new SluiceError('SLUICE_ERR_CURSOR_INVALID', 'since is not a cursor from this gateway');
}

function refuse(socket: Duplex, status: number, text: string, body: Record<string, string>): void {
  const json = JSON.stringify({ statusCode: status, error: text, ...body });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`);
}

export type StreamServer = ReturnType<typeof createStreamServer>;
