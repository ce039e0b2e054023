import type { IncomingMessage, ServerResponse } from 'node:http';
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
import { decodeCursor, FROM_MAX, FROM_MIN } from '../stream/cursor.ts';
import { identityError, identityOf } from '../tls/identity.ts';
import { parseSluIdQuery } from './protocol.ts';
import type { BufferBudget } from './buffer-budget.ts';
import type { StreamTransport } from '../stream/transport.ts';
import { SseTransport } from '../sse/sse-transport.ts';
import { startSessionTimers } from './session-timers.ts';
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

/** What the stream server needs from the gateway. */
export interface StreamServerDeps {
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
}

/**
 * The WebSocket endpoint on the HTTPS server's port. Authentication happens at the upgrade, before any
 * WebSocket exists: no verified client certificate, plain 401 (ws's noServer pattern). Query problems are
 * reported after the upgrade, as an error frame and a close code, because browsers cannot read HTTP bodies of
 * failed upgrades.
 */
export function createStreamServer(deps: StreamServerDeps) {
  const { grants, log, opts } = deps;
  // Two tiers: frames up to 4x the limit (or 64 KiB) are read and refused by the session with a reasoned 1009;
  // beyond that ws stops reading at once (1009 without a reason), so no client can make us buffer more.
  const hardMaxPayload = Math.max(4 * opts.maxPayloadBytes, 64 * 1024);
  const wss = new WebSocketServer({ noServer: true, maxPayload: hardMaxPayload, perMessageDeflate: false, clientTracking: true });
  const sessions = new Map<StreamTransport, Session>();
  // Connections per partner CN, counted from the start of the upgrade (so a burst cannot overshoot the cap).
  const slots = new ConnectionSlots(opts.maxConnections, opts.maxConnectionsPerPartner);
  const release = (cn: string) => slots.release(cn);

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
    const checked = checkUpgrade(req, opts.path, deps.isRevoked, log);
    if ('error' in checked) return refuse(socket, checked.error, {}, deps.metrics);
    const { url, partner } = checked;
    const full = slots.take(partner.cn);
    if (full === 'SLUICE_ERR_SERVER_FULL') {
      log.warn({ partner: partner.cn, total: slots.total }, 'refused: gateway at its stream connection cap');
      return refuse(socket, new SluiceError(full, `this gateway holds its maximum of ${opts.maxConnections} stream connections; retry later or another gateway`), { 'Retry-After': '5' }, deps.metrics);
    }
    if (full === 'SLUICE_ERR_PARTNER_CONNECTIONS') {
      log.warn({ partner: partner.cn, connections: opts.maxConnectionsPerPartner }, 'refused: partner at its stream connection cap');
      return refuse(socket, new SluiceError(full, `partner "${partner.cn}" already has ${opts.maxConnectionsPerPartner} stream connections (the maximum); close one first`), { 'Retry-After': '5' }, deps.metrics);
    }
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
      const request = { sluIds: url.searchParams.getAll('slu_id'), since: url.searchParams.get('since'), from: url.searchParams.get('from') };
      const { session, closed } = openSession({ ...deps, budget: timers.budget, sessions, release }, ws, request, partner, access);
      ws.on('message', (data, isBinary) => session.onMessage(data as Buffer, isBinary));
      ws.on('pong', () => (session.alive = true));
      ws.on('error', (err) => log.debug({ partner: partner.cn, err: err.message }, 'stream socket error'));
      ws.on('close', closed);
    });
  };
  deps.server.on('upgrade', onUpgrade);

  const timers = startSessionTimers(sessions, opts, log);

  return {
    get clients(): number {
      return sessions.size;
    },
    /**
     * Serves one Server-Sent Events stream (GET BASE_PATH/events) on a request the REST app has already
     * authenticated and authorised: the same slots, limits, grants, revocation and resume as a WebSocket.
     * Returns an error to answer instead when a connection cap refuses it.
     */
    openEvents(res: ServerResponse, partner: PartnerIdentity, access: Access, request: StreamRequest): SluiceError | undefined {
      const full = slots.take(partner.cn);
      if (full !== 'ok') {
        log.warn({ partner: partner.cn }, 'refused: stream connection cap (events)');
        return new SluiceError(full, full === 'SLUICE_ERR_SERVER_FULL' ? `this gateway holds its maximum of ${opts.maxConnections} streams` : `partner "${partner.cn}" already has ${opts.maxConnectionsPerPartner} streams (the maximum); close one first`);
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
      // retry: how soon an EventSource reconnects after the stream ends (its default is a few seconds).
      res.write(': sluice events; each event id is a cursor (resume with Last-Event-ID)\nretry: 1000\n\n');
      const transport = new SseTransport(res);
      const { session, closed } = openSession({ ...deps, budget: timers.budget, sessions, release }, transport, request, partner, access);
      transport.onAlive = () => (session.alive = true);
      res.on('close', closed);
      return undefined;
    },
    sessions: () => sessions.values(),
    /** Closes every client with 1012 (reconnect elsewhere with your cursor) and stops accepting. */
    async close(): Promise<void> {
      timers.close();
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

/**
 * What an upgrade must pass before any WebSocket exists: an origin-form path to the endpoint (an absolute-form or
 * malformed target is refused, not parsed), a certificate that identifies a partner, and not revoked.
 */
function checkUpgrade(
  req: IncomingMessage,
  path: string,
  isRevoked: ((p: PartnerIdentity) => boolean) | undefined,
  log: Logger,
): { url: URL; partner: PartnerIdentity } | { error: SluiceError } {
  const target = req.url ?? '';
  let url: URL;
  try {
    if (!target.startsWith('/') || target.startsWith('//')) throw new Error('not an origin-form path');
    url = new URL(target, 'https://x');
  } catch {
    return { error: new SluiceError('SLUICE_ERR_PARAM', `the request target must be a path, e.g. ${path}`, { parameter: 'path' }) };
  }
  if (url.pathname !== path && url.pathname !== path + '/') return { error: new SluiceError('SLUICE_ERR_NOT_FOUND', `no WebSocket endpoint at ${url.pathname}; use ${path}`) };
  const check = identityOf(req.socket as TLSSocket);
  if (!check.ok) {
    if (check.code === 'SLUICE_ERR_CERT_IDENTITY') log.warn({ fingerprint: check.fingerprint256, reason: check.reason }, 'refused: certificate cannot identify a partner');
    return { error: identityError(check) };
  }
  if (isRevoked?.(check.identity)) {
    log.warn({ partner: check.identity.cn, serial: check.identity.serial }, 'refused: certificate revoked');
    return { error: new SluiceError('SLUICE_ERR_CERT_REVOKED') };
  }
  return { url, partner: check.identity };
}

/** Stream connections in all and per partner (CN), counted from the start of an upgrade to its socket's end. */
class ConnectionSlots {
  total = 0;
  private readonly perPartner = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly maxPerPartner: number,
  ) {}

  take(cn: string): 'ok' | 'SLUICE_ERR_SERVER_FULL' | 'SLUICE_ERR_PARTNER_CONNECTIONS' {
    if (this.total >= this.max) return 'SLUICE_ERR_SERVER_FULL';
    const mine = this.perPartner.get(cn) ?? 0;
    if (mine >= this.maxPerPartner) return 'SLUICE_ERR_PARTNER_CONNECTIONS';
    this.total++;
    this.perPartner.set(cn, mine + 1);
    return 'ok';
  }

  release(cn: string): void {
    this.total--;
    const n = (this.perPartner.get(cn) ?? 1) - 1;
    if (n <= 0) this.perPartner.delete(cn);
    else this.perPartner.set(cn, n);
  }
}

/** What a stream asked for: its SLUs (`slu_id` values) and where to resume (`since`, or SSE's Last-Event-ID). */
export interface StreamRequest {
  readonly sluIds: readonly string[];
  readonly since: string | null;
  /** from=: unix seconds to start the history at (ignored when resuming with since). */
  readonly from?: string | null;
}

/**
 * A stream that passed the checks, on any transport: its session, grant watch and start. Returns the session and
 * `closed`, which the caller runs when its transport ends (frees the slot once a running replay has stopped).
 */
function openSession(
  ctx: StreamServerDeps & { budget: BufferBudget; sessions: Map<StreamTransport, Session>; release(cn: string): void },
  transport: StreamTransport,
  request: StreamRequest,
  partner: PartnerIdentity,
  access: Access,
): { session: Session; closed(): void } {
  const { grants, log, opts, sessions, release } = ctx;
  const slus = parseSluIdQuery(request.sluIds);
  const sinceText = request.since;
  const since = sinceText === null ? undefined : decodeCursor(sinceText);
  const session = new Session(transport, partner, slus.ok ? slus.ids : [], access, ctx.hub, ctx.replay, ctx.cache, ctx.opts, ctx.log, ctx.metrics, ctx.budget);
  sessions.set(transport, session);
  const unwatch = grants.watch(partner, (a) => session.applyAccess(a));
  // A change between the lookup above and watch(): the cached promise is already the new access then.
  void grants.accessOf(partner).then((a) => a !== access && session.applyAccess(a), () => undefined);
  let done = false;
  const closed = () => {
    if (done) return;
    done = true;
    unwatch();
    session.dispose(); // aborts a running replay: its query is cancelled
    sessions.delete(transport);
    // A replay counts against the partner's connection cap until it has really stopped, not just its socket.
    void session.replayDone.then(() => release(partner.cn));
  };
  log.info({ partner: partner.cn, slu_ids: slus.ok ? (slus.ids ?? 'all') : undefined, resume: since !== undefined }, 'stream connected');
  const start = () => {
    if (!slus.ok) return session.fail(paramError(slus.message));
    if (slus.ids && slus.ids.length > opts.maxSlus) return session.fail(tooMany(slus.ids.length, opts.maxSlus));
    if (sinceText !== null && !since) return session.fail(cursorError());
    let from: number | undefined;
    if (request.from != null && sinceText === null) {
      from = /^-?\d{1,12}$/.test(request.from) ? Number(request.from) : NaN;
      if (!(from >= FROM_MIN && from <= FROM_MAX)) {
        return session.fail(new SluiceError('SLUICE_ERR_PARAM', `from must be Unix seconds (years 1-9999), got ${JSON.stringify(request.from.slice(0, 24))}`, { parameter: 'from' }));
      }
    }
    if (slus.ids) session.refuseForbidden(slus.ids.filter((id) => !mayRead(access, id)));
    void session.start(since, from);
  };
  // After the caller has wired its close handler (a failure closes at once).
  queueMicrotask(start);
  return { session, closed };
}
