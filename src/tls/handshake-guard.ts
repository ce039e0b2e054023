import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from '../log.ts';
import type { Metrics } from '../ops/metrics.ts';
import { addressGroup } from './address-group.ts';

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
}

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
 */
export class HandshakeGuard extends EventEmitter<HandshakeGuardEvents> {
  #pending = 0;
  private readonly perGroup = new Map<string, number>();
  /** By TCP 4-tuple: 'secureConnection' hands over the TLSSocket, not the raw socket counted at 'connection'. */
  private readonly byKey = new Map<string, Pending>();
  private closed = false;
  private readonly unlogged = { [REFUSED.pending]: 0, [REFUSED.perAddress]: 0, [REFUSED.maxConnections]: 0, timedOut: 0, firstAddress: '' };
  private logTimer: NodeJS.Timeout | undefined;

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
    // Appended after tls.Server's own 'connection' listener: the TLSSocket already wraps the raw socket, and
    // destroying the raw socket destroys it too.
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
    const entry: Pending = { socket, group, key, onClose: () => this.release(entry), released: false };
    this.byKey.set(key, entry);
    socket.once('close', entry.onClose);
    this.emit('admitted', group);
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
