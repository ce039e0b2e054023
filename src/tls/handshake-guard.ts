import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from '../log.ts';
import type { Metrics } from '../ops/metrics.ts';
import { addressGroup } from './address-group.ts';
import { HandshakeQueue } from './handshake-queue.ts';

/** Why a new connection was reset before its handshake began: the `reason` of sluice_connections_refused_total. */
export const REFUSED = {
  /** MAX_PENDING_HANDSHAKES connections were already in the handshake. */
  pending: 'pending_handshakes',
  /** MAX_PENDING_HANDSHAKES_PER_ADDRESS of them came from this address (IPv6: this /64). */
  perAddress: 'pending_handshakes_per_address',
  /** The server held MAX_CONNECTIONS connections (Node closes these itself; counted here so they are seen). */
  maxConnections: 'max_connections',
} as const;
export type RefusedReason = (typeof REFUSED)[keyof typeof REFUSED];

export interface HandshakeGuardOptions {
  /** Connections in the TLS handshake at once, from anywhere (MAX_PENDING_HANDSHAKES). */
  readonly maxPending: number;
  /** The same from one address, IPv6 grouped by /64 (MAX_PENDING_HANDSHAKES_PER_ADDRESS). */
  readonly maxPendingPerAddress: number;
  /**
   * From the TCP connection to the end of the handshake, queue included, ms (TLS_HANDSHAKE_TIMEOUT_MS). Without
   * it only the server's own `handshakeTimeout` applies, which starts when the handshake does.
   */
  readonly handshakeTimeoutMs?: number;
  /** Handshakes started but not finished at once; more wait in the queue (HandshakeQueue) (MAX_HANDSHAKES_IN_FLIGHT). Default 16. */
  readonly maxInHandshake?: number;
  /** Most time one event-loop turn spends starting handshakes, ms. Default 2. */
  readonly turnBudgetMs?: number;
}

/**
 * MAX_HANDSHAKES_IN_FLIGHT's default, and the time one turn may spend starting handshakes (each costs a key
 * exchange and a signature). In `npm run bench:stream`'s idle phase (10,000 clients reconnecting 2,000 at a
 * time) 16 and 2 ms gave a worst event-loop delay of 67-282 ms (median 117, 6 runs), 64 and 5 ms 215-240 ms, and
 * starting each handshake as accepted 316-568 ms, with the same total reconnect time (docs/capacity.md). Far
 * away clients want more in flight: at most this many handshakes finish per round trip.
 */
const DEFAULT_MAX_IN_HANDSHAKE = 16;
const DEFAULT_TURN_BUDGET_MS = 2;

/** Lifecycle events, so tests can wait on them; `group` is the address group (see addressGroup). */
export interface HandshakeGuardEvents {
  admitted: [group: string];
  refused: [reason: RefusedReason, group: string];
  released: [group: string];
}

/** At most one log line per this many ms about refusals and timeouts: a flood must not flood the log. */
const LOG_INTERVAL_MS = 1000;

interface Pending {
  readonly socket: Socket;
  readonly group: string;
  readonly key: string;
  /** performance.now() at the TCP connection. */
  readonly since: number;
  readonly onClose: () => void;
  released: boolean;
}

/**
 * Keeps connections that have not proven who they are from crowding out partners. Node lets any TCP peer hold
 * a connection slot (MAX_CONNECTIONS) for the whole handshake timeout without sending a byte; this counts the
 * connections still in the TLS handshake, in all and per remote address, and resets a new one at once when
 * either count is at its cap, before the server spends a handshake on it. Refusals (and the server's own drops
 * at MAX_CONNECTIONS) and handshake timeouts are counted (metrics) and summarised in the log at most once a second. The timeout itself is the server's
 * `handshakeTimeout` (tlsServerOptions).
 *
 * A connection counts from the server's 'connection' event until 'secureConnection' or its socket's 'close',
 * whichever comes first; every way a handshake can end (success, refusal, timeout, peer reset, bad certificate)
 * ends in that socket's 'close', so the counts cannot leak.
 *
 * The guard takes the TLS server's own 'connection' listeners off it and starts the handshakes itself, paced by a
 * HandshakeQueue: a counted connection waits there until a turn has room. Queued connections count as pending
 * (the caps bound the queue), and `handshakeTimeoutMs` runs from the TCP connection, so waiting does not extend it.
 */
export class HandshakeGuard extends EventEmitter<HandshakeGuardEvents> {
  #pending = 0;
  private readonly perGroup = new Map<string, number>();
  /** By TCP 4-tuple: 'secureConnection' hands over the TLSSocket, not the raw socket counted at 'connection'. */
  private readonly byKey = new Map<string, Pending>();
  private closed = false;
  private readonly unlogged = { [REFUSED.pending]: 0, [REFUSED.perAddress]: 0, [REFUSED.maxConnections]: 0, timedOut: 0, firstAddress: '' };
  private logTimer: NodeJS.Timeout | undefined;
  private readonly queue: HandshakeQueue;
  /** Fires at the oldest pending connection's deadline (byKey is in arrival order). */
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: TlsServer,
    private readonly opts: HandshakeGuardOptions,
    private readonly log: Logger,
    private readonly metrics?: Pick<Metrics, 'connectionsRefused' | 'handshakeTimeouts'>,
  ) {
    super();
    for (const k of ['maxPending', 'maxPendingPerAddress'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new TypeError(`HandshakeGuard: ${k} must be an integer >= 1, got ${opts[k]}`);
    }
    // tls.Server wraps each socket in a TLSSocket from its 'connection' listener; we call it when the queue admits
    // the socket instead. Destroying the raw socket (refusal, timeout, close) destroys its TLSSocket too.
    const startTls = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    this.queue = new HandshakeQueue({
      start: (socket) => {
        for (const l of startTls) l.call(server, socket);
      },
      inHandshake: () => this.#pending - this.queue.size,
      maxInHandshake: opts.maxInHandshake ?? DEFAULT_MAX_IN_HANDSHAKE,
      turnBudgetMs: opts.turnBudgetMs ?? DEFAULT_TURN_BUDGET_MS,
    });
    server.on('connection', this.onConnection);
    server.on('secureConnection', this.onSecure);
    server.on('tlsClientError', this.onTlsError);
    server.on('drop', this.onDrop);
    if (server.maxConnections > 0 && opts.maxPending >= server.maxConnections) {
      log.warn(
        { maxPending: opts.maxPending, maxConnections: server.maxConnections },
        'MAX_PENDING_HANDSHAKES is not below MAX_CONNECTIONS: connections that never finish a handshake can still take every slot; lower it',
      );
    }
  }

  /** Connections in the TLS handshake now. */
  get pending(): number {
    return this.#pending;
  }

  /** Connections in the TLS handshake now from `address`'s group (its /64 for IPv6). */
  pendingFrom(address: string): number {
    return this.perGroup.get(addressGroup(address)) ?? 0;
  }

  /** The server's open connections, handshaking or not (tests wait for a quiet server: MAX_CONNECTIONS counts them all). */
  connections(): Promise<number> {
    return new Promise((resolve, reject) => this.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  }

  /** Of `pending`, the connections still waiting for their handshake to start (HandshakeQueue). */
  get queued(): number {
    return this.queue.size;
  }

  /** Address groups with a connection in the handshake now (0 once everything has settled). */
  get addresses(): number {
    return this.perGroup.size;
  }

  private readonly onConnection = (socket: Socket): void => {
    if (this.closed) return void socket.destroy(); // shutting down: a handshake now would only hold up server.close()
    const address = socket.remoteAddress;
    if (address === undefined) return void socket.destroy(); // reset by the peer before we got to it
    const group = addressGroup(address);
    const fromGroup = this.perGroup.get(group) ?? 0;
    const reason = this.#pending >= this.opts.maxPending ? REFUSED.pending : fromGroup >= this.opts.maxPendingPerAddress ? REFUSED.perAddress : undefined;
    if (reason) {
      // A reset, not a FIN: no TIME_WAIT left on our side for each refused connection of a flood.
      socket.resetAndDestroy();
      this.metrics?.connectionsRefused.inc({ reason });
      this.note(reason, group);
      this.emit('refused', reason, group);
      return;
    }
    this.#pending++;
    this.perGroup.set(group, fromGroup + 1);
    const key = connectionKey(socket);
    const entry: Pending = { socket, group, key, since: performance.now(), onClose: () => this.release(entry), released: false };
    this.byKey.set(key, entry);
    socket.once('close', entry.onClose);
    this.armDeadline();
    this.queue.push(socket);
    this.emit('admitted', group);
  };

  private armDeadline(): void {
    const timeoutMs = this.opts.handshakeTimeoutMs;
    if (timeoutMs === undefined || this.deadlineTimer || this.closed) return;
    const oldest = this.byKey.values().next().value as Pending | undefined;
    if (!oldest) return;
    this.deadlineTimer = setTimeout(this.onDeadline, Math.max(0, oldest.since + timeoutMs - performance.now()));
    this.deadlineTimer.unref();
  }

  /** Closes every connection that has not finished its handshake within the timeout of its TCP connection. */
  private readonly onDeadline = (): void => {
    this.deadlineTimer = undefined;
    const cutoff = performance.now() - (this.opts.handshakeTimeoutMs ?? Infinity);
    for (const entry of this.byKey.values()) {
      if (entry.since > cutoff) break; // arrival order: the rest are younger
      entry.socket.off('close', entry.onClose);
      this.release(entry);
      entry.socket.destroy(); // a FIN, as the server's own handshake timeout sends
      this.metrics?.handshakeTimeouts.inc();
      this.note('timedOut', entry.group);
    }
    this.armDeadline();
  };

  private readonly onDrop = (data?: { remoteAddress?: string }): void => {
    const group = addressGroup(data?.remoteAddress);
    this.metrics?.connectionsRefused.inc({ reason: REFUSED.maxConnections });
    this.note(REFUSED.maxConnections, group);
    this.emit('refused', REFUSED.maxConnections, group);
  };

  private readonly onSecure = (tlsSocket: TLSSocket): void => {
    const entry = this.byKey.get(connectionKey(tlsSocket));
    if (!entry) return;
    entry.socket.off('close', entry.onClose);
    this.release(entry);
  };

  private readonly onTlsError = (err: NodeJS.ErrnoException, tlsSocket: TLSSocket): void => {
    // The socket is destroyed right after this event (by https.Server), and its 'close' releases the count.
    if (err.code !== 'ERR_TLS_HANDSHAKE_TIMEOUT') return;
    // Released now, not at its 'close': our own deadline may fall in the same timers phase and must not count it again.
    // Absent: our deadline closed it already (the server's timer may fire in the same phase) and counted it.
    const entry = this.byKey.get(connectionKey(tlsSocket));
    if (!entry) return;
    entry.socket.off('close', entry.onClose);
    this.release(entry);
    this.metrics?.handshakeTimeouts.inc();
    this.note('timedOut', addressGroup(tlsSocket.remoteAddress));
  };

  private release(entry: Pending): void {
    if (entry.released) return;
    entry.released = true;
    this.#pending--;
    const left = (this.perGroup.get(entry.group) ?? 1) - 1;
    if (left > 0) this.perGroup.set(entry.group, left);
    else this.perGroup.delete(entry.group);
    if (this.byKey.get(entry.key) === entry) this.byKey.delete(entry.key);
    this.queue.remove(entry.socket);
    this.queue.kick();
    this.emit('released', entry.group);
  }

  private note(kind: RefusedReason | 'timedOut', group: string): void {
    this.unlogged[kind]++;
    this.unlogged.firstAddress ||= group;
    if (!this.logTimer) this.flushLog(); // the first one at once, then one summary per interval while it lasts
  }

  private readonly flushLog = (): void => {
    const u = this.unlogged;
    const refused = u[REFUSED.pending] + u[REFUSED.perAddress] + u[REFUSED.maxConnections];
    this.logTimer = undefined;
    if (refused + u.timedOut === 0) return;
    const fields = {
      refused: { [REFUSED.pending]: u[REFUSED.pending], [REFUSED.perAddress]: u[REFUSED.perAddress], [REFUSED.maxConnections]: u[REFUSED.maxConnections] },
      handshakeTimeouts: u.timedOut,
      firstAddress: u.firstAddress,
      pending: this.#pending,
      maxPending: this.opts.maxPending,
      maxPendingPerAddress: this.opts.maxPendingPerAddress,
    };
    if (refused > 0) this.log.warn(fields, 'refused new connections: too many pending TLS handshakes or connections');
    else this.log.info(fields, 'closed connections that did not finish the TLS handshake in time');
    Object.assign(u, { [REFUSED.pending]: 0, [REFUSED.perAddress]: 0, [REFUSED.maxConnections]: 0, timedOut: 0, firstAddress: '' });
    if (this.closed) return;
    this.logTimer = setTimeout(this.flushLog, LOG_INTERVAL_MS);
    this.logTimer.unref();
  };

  /**
   * Stops admitting handshakes and destroys the ones in progress: they are not partners yet, and would hold
   * the server's close() until they time out. Connections that arrive afterwards are destroyed at once.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.close();
    clearTimeout(this.deadlineTimer);
    clearTimeout(this.logTimer);
    this.flushLog();
    this.server.off('secureConnection', this.onSecure);
    this.server.off('tlsClientError', this.onTlsError);
    this.server.off('drop', this.onDrop);
    for (const entry of [...this.byKey.values()]) entry.socket.destroy();
  }
}

/** Unique among open TCP connections, and the same on the raw socket and the TLSSocket that wraps it. */
function connectionKey(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}
