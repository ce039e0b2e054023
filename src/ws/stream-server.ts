import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorBody, SluiceError, STATUS_TEXT, toSluiceError } from '../errors.ts';
import { hasAnyAccess, mayRead, type Access, type Grants } from '../access/grants.ts';
import type { PartnerIdentity } from '../tls/identity.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { Hub } from '../hub/hub.ts';
import { decodeCursor } from '../stream/cursor.ts';
import { identityError, identityOf } from '../tls/identity.ts';
import { parseSluIdQuery } from './protocol.ts';
import { BufferBudget } from './buffer-budget.ts';
import { Session, type ReplayDeps, type SessionLimits } from './session.ts';

export interface StreamServerOptions extends SessionLimits {
  /** Stream connections the whole gateway accepts; beyond, upgrades get 503 (SLUICE_ERR_SERVER_FULL). */
  readonly maxConnections: number;
  /** Stream connections one partner (CN) may hold; beyond, upgrades get 429 (SLUICE_ERR_PARTNER_CONNECTIONS). */
  readonly maxConnectionsPerPartner: number;
  /** Unsent bytes all of one partner's streams together may hold; beyond, its most-behind streams are cut off (4408). */
  readonly maxPartnerBufferBytes: number;
  /** Unsent bytes all streams together may hold; beyond, the most-behind streams are cut off (4408). */
  readonly maxTotalBufferBytes: number;
  /** Path of the endpoint, e.g. /cityxchange/stream. */
  readonly path: string;
  /** Ping interval; a client that has not answered the previous ping is dropped, ms. */
  readonly heartbeatMs: number;
}

/**
 * The WebSocket endpoint on the HTTPS server's port. Authentication happens at the upgrade, before any
 * WebSocket exists: no verified client certificate, plain 401 (ws's noServer pattern). Query problems are
 * reported after the upgrade, as an error frame and a close code, because browsers cannot read HTTP bodies of
 * failed upgrades.
 */
export function createStreamServer(deps: {
  server: import('node:https').Server;
  hub: Hub;
  /** Resumes (since=): their connections, slots and window. */
  replay: ReplayDeps;
  cache: ReadingCache;
  grants: Grants;
  /** True when the certificate is revoked (CRL deny-list), checked at every upgrade (TLS resumption skips the handshake check). */
  isRevoked?: (p: PartnerIdentity) => boolean;
  metrics?: Metrics;
  log: Logger;
  opts: StreamServerOptions;
}) {
  const { hub, replay, cache, grants, log, opts } = deps;
  // Two tiers: frames up to 4x the limit (or 64 KiB) are read and refused by the session with a reasoned 1009;
  // beyond that ws stops reading at once (1009 without a reason), so no client can make us buffer more.
  const hardMaxPayload = Math.max(4 * opts.maxPayloadBytes, 64 * 1024);
  const wss = new WebSocketServer({ noServer: true, maxPayload: hardMaxPayload, perMessageDeflate: false, clientTracking: true });
  const sessions = new Map<WebSocket, Session>();
  // Connections per partner CN, counted from the start of the upgrade (so a burst cannot overshoot the cap).
  const perPartner = new Map<string, number>();
  let total = 0;
  const release = (cn: string) => {
    total--;
    const n = (perPartner.get(cn) ?? 1) - 1;
    if (n <= 0) perPartner.delete(cn);
    else perPartner.set(cn, n);
  };

  // Nothing a client sends may throw out of the upgrade handler: it runs outside any request context, so an
  // exception there would be uncaught and end the process (an absolute-form URL like //a:99999/ did).
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      upgrade(req, socket, head);
    } catch (err) {
      log.error({ err, url: String(req.url).slice(0, 200) }, 'upgrade failed');
      refuse(socket, new SluiceError('SLUICE_ERR_INTERNAL'), {}, deps.metrics);
    }
  };
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let url: URL;
    try {
      // Only the origin-form path is ours to read: an absolute-form or malformed target is refused, not parsed.
      if (!(req.url ?? '').startsWith('/') || (req.url ?? '').startsWith('//')) throw new Error('not an origin-form path');
      url = new URL(req.url ?? '/', 'https://x');
    } catch {
      return refuse(socket, new SluiceError('SLUICE_ERR_PARAM', `the request target must be a path, e.g. ${opts.path}`, { parameter: 'path' }), {}, deps.metrics);
    }
    if (url.pathname !== opts.path && url.pathname !== opts.path + '/') {
      return refuse(socket, new SluiceError('SLUICE_ERR_NOT_FOUND', `no WebSocket endpoint at ${url.pathname}; use ${opts.path}`), {}, deps.metrics);
    }
    const check = identityOf(req.socket as TLSSocket);
    if (!check.ok) {
      if (check.code === 'SLUICE_ERR_CERT_IDENTITY') log.warn({ fingerprint: check.fingerprint256, reason: check.reason }, 'refused: certificate cannot identify a partner');
      return refuse(socket, identityError(check), {}, deps.metrics);
    }
    const partner = check.identity;
    if (deps.isRevoked?.(partner)) {
      log.warn({ partner: partner.cn, serial: partner.serial }, 'refused: certificate revoked');
      return refuse(socket, new SluiceError('SLUICE_ERR_CERT_REVOKED'), {}, deps.metrics);
    }
    if (total >= opts.maxConnections) {
      log.warn({ partner: partner.cn, total }, 'refused: gateway at its stream connection cap');
      return refuse(socket, new SluiceError('SLUICE_ERR_SERVER_FULL', `this gateway holds its maximum of ${opts.maxConnections} stream connections; retry later or another gateway`), { 'Retry-After': '5' }, deps.metrics);
    }
    const mine = perPartner.get(partner.cn) ?? 0;
    if (mine >= opts.maxConnectionsPerPartner) {
      log.warn({ partner: partner.cn, connections: mine }, 'refused: partner at its stream connection cap');
      return refuse(socket, new SluiceError('SLUICE_ERR_PARTNER_CONNECTIONS', `partner "${partner.cn}" already has ${mine} stream connections (the maximum); close one first`), { 'Retry-After': '5' }, deps.metrics);
    }
    total++;
    perPartner.set(partner.cn, mine + 1);
    grants.accessOf(partner).then(
      (access) => {
        if (!hasAnyAccess(access)) {
          release(partner.cn);
          log.warn({ partner: partner.cn, fingerprint: partner.fingerprint256 }, 'refused: partner has no grants');
          return refuse(socket, new SluiceError('SLUICE_ERR_NO_GRANTS', `partner "${partner.cn}" has no access to any SLU; ask the operator for a grant`), {}, deps.metrics);
        }
        accept(req, socket, head, url, partner, access);
      },
      (err: unknown) => {
        release(partner.cn);
        const e = toSluiceError(err);
        if (e.status >= 500 && e.code !== 'SLUICE_ERR_DB_UNAVAILABLE') log.error({ err, partner: partner.cn }, 'grant lookup failed');
        refuse(socket, e, {}, deps.metrics);
      },
    );
  };

  const accept = (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, partner: PartnerIdentity, access: Access) => {
    if (socket.destroyed) return release(partner.cn);
    // ws refuses a bad handshake (Sec-WebSocket-Key, version, a socket already gone) itself and never calls back:
    // the slot counted above is then freed when the socket closes, or it would leak until a restart.
    let upgraded = false;
    socket.once('close', () => upgraded || release(partner.cn));
    wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      const slus = parseSluIdQuery(url.searchParams.getAll('slu_id'));
      const sinceText = url.searchParams.get('since');
      const since = sinceText === null ? undefined : decodeCursor(sinceText);
      const session = new Session(ws, partner, slus.ok ? slus.ids : [], access, hub, replay, cache, opts, log, deps.metrics, budget);
      sessions.set(ws, session);
      const unwatch = grants.watch(partner, (a) => session.applyAccess(a));
      // A change between the lookup above and watch(): the cached promise is already the new access then.
      void grants.accessOf(partner).then((a) => a !== access && session.applyAccess(a), () => undefined);
      ws.on('message', (data, isBinary) => session.onMessage(data as Buffer, isBinary));
      ws.on('pong', () => (session.alive = true));
      ws.on('error', (err) => log.debug({ partner: partner.cn, err: err.message }, 'stream socket error'));
      ws.on('close', () => {
        unwatch();
        session.dispose(); // aborts a running replay: its query is cancelled
        sessions.delete(ws);
        // A replay counts against the partner's connection cap until it has really stopped, not just its socket.
        void session.replayDone.then(() => release(partner.cn));
      });
      log.info({ partner: partner.cn, slu_ids: slus.ok ? (slus.ids ?? 'all') : undefined, resume: since !== undefined }, 'stream connected');
      if (!slus.ok) return session.fail(paramError(slus.message));
      if (slus.ids && slus.ids.length > opts.maxSlus) return session.fail(tooMany(slus.ids.length, opts.maxSlus));
      if (sinceText !== null && !since) return session.fail(cursorError());
      if (slus.ids) session.refuseForbidden(slus.ids.filter((id) => !mayRead(access, id)));
      void session.start(since);
    });
  };
  deps.server.on('upgrade', onUpgrade);

  // Each session is pinged once per heartbeatMs, a slice of them every tick rather than all at once: 10,000
  // pings written in one tick hold up live delivery for tens of milliseconds.
  const heartbeatTicks = Math.max(1, Math.min(10, Math.floor(opts.heartbeatMs / 100)));
  let pingAt = sessions.entries();
  const heartbeat = setInterval(() => {
    for (let n = Math.ceil(sessions.size / heartbeatTicks); n > 0; n--) {
      let next = pingAt.next();
      if (next.done) {
        pingAt = sessions.entries(); // a Map iterator is live: sessions added since are visited, removed ones skipped
        next = pingAt.next();
        if (next.done) break;
      }
      const [ws, s] = next.value;
      const now = Date.now();
      if (now - s.pingedAt < opts.heartbeatMs) continue; // small sets are visited every tick; each acts once per interval
      if (!s.alive) {
        log.info({ partner: s.partner.cn }, 'stream peer did not answer ping; dropping');
        ws.terminate();
        continue;
      }
      s.alive = false;
      s.pingedAt = now;
      ws.ping();
    }
  }, opts.heartbeatMs / heartbeatTicks);
  heartbeat.unref();

  // WS_MAX_BUFFER_BYTES bounds one stream; the budget bounds them together, per partner and in all (see
  // BufferBudget). A stream over its own bound with nothing sent since is cut off here too, not at its next frame.
  const budget = new BufferBudget(opts.maxPartnerBufferBytes, opts.maxTotalBufferBytes);
  const budgets = setInterval(() => {
    for (const s of sessions.values()) {
      if (!s.isClosed && s.bufferedBytes() > opts.maxBufferBytes) s.cutOff(`more than ${opts.maxBufferBytes} bytes unread; reconnect with since=<your last cursor>`);
    }
    budget.sweep(sessions.values());
  }, 250);
  budgets.unref();

  return {
    get clients(): number {
      return sessions.size;
    },
    sessions: () => sessions.values(),
    /** Closes every client with 1012 (reconnect elsewhere with your cursor) and stops accepting. */
    async close(): Promise<void> {
      clearInterval(heartbeat);
      clearInterval(budgets);
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

/** Answers an upgrade with a plain HTTP error (the same JSON body as REST errors) and closes the socket. */
function refuse(socket: Duplex, err: SluiceError, headers: Record<string, string> = {}, metrics?: Metrics): void {
  if (err.status < 500 || err.code === 'SLUICE_ERR_SERVER_FULL') metrics?.refusals.inc({ code: err.code });
  if (socket.destroyed) return;
  const json = JSON.stringify(errorBody(err));
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${err.status} ${STATUS_TEXT[err.status] ?? 'Error'}\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`);
}

export type StreamServer = ReturnType<typeof createStreamServer>;
