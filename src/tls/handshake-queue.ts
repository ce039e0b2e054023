import type { Socket } from 'node:net';

/** How the queue admits sockets to the TLS handshake (HandshakeGuard passes its own). */
export interface HandshakeQueueOptions {
  /** Starts the TLS handshake on a raw socket: the TLS server's own 'connection' listeners. */
  readonly start: (socket: Socket) => void;
  /** Connections admitted to the handshake and not yet through it (the queue's own are not among them). */
  readonly inHandshake: () => number;
  /** Most connections in the handshake at once; the rest wait. */
  readonly maxInHandshake: number;
  /** Most time one event-loop turn spends starting handshakes, ms (at least one socket is started per turn). */
  readonly turnBudgetMs: number;
}

/** What a peer may send while it waits; a ClientHello is well under this. Beyond, we stop reading until admitted. */
const MAX_BUFFERED_BYTES = 16 * 1024;

interface Waiting {
  readonly chunks: Buffer[];
  bytes: number;
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
  readonly onError: () => void;
}

/**
 * Paces the start of TLS handshakes. A handshake's first step (key exchange and signature) runs synchronously
 * when the ClientHello is read, and libuv reads every ready socket in one poll phase: 2,000 clients reconnecting
 * at once cost one loop turn of seconds, during which no stream frame goes out. Here an accepted socket waits in
 * a FIFO and is handed to the TLS server (its own 'connection' listeners) from a setImmediate, for at most
 * `turnBudgetMs` per turn and while fewer than `maxInHandshake` are past the queue, so that the second step (the
 * client certificate's checks) of the ones in flight cannot pile up in one turn either.
 *
 * A waiting socket is read (its ClientHello is kept and given back to the TLS socket on admission) so that a peer
 * that goes away while queued is seen at once and dropped. The queue holds only what HandshakeGuard has already
 * counted as pending, so MAX_PENDING_HANDSHAKES and the per-address cap bound it, and the guard's deadline (the
 * handshake timeout, from the TCP connection) covers the time spent waiting.
 */
export class HandshakeQueue {
  /** Insertion order is arrival order: the first key is the oldest. */
  private readonly waiting = new Map<Socket, Waiting>();
  private scheduled: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(private readonly opts: HandshakeQueueOptions) {
    for (const k of ['maxInHandshake', 'turnBudgetMs'] as const) {
      if (!(opts[k] > 0)) throw new TypeError(`HandshakeQueue: ${k} must be > 0, got ${opts[k]}`);
    }
  }

  /** Sockets waiting now. */
  get size(): number {
    return this.waiting.size;
  }

  /** Queues an accepted socket; it is started on a later turn (never synchronously, so a burst is spread). */
  push(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    const w: Waiting = {
      chunks: [],
      bytes: 0,
      onData: (chunk) => {
        w.chunks.push(chunk);
        w.bytes += chunk.length;
        if (w.bytes >= MAX_BUFFERED_BYTES) socket.pause(); // the kernel holds the rest; it is read after admission
      },
      // The peer went away (FIN) or reset: it would only cost a handshake. 'close' follows and releases its count.
      onEnd: () => socket.destroy(),
      onError: () => socket.destroy(),
    };
    socket.on('data', w.onData);
    socket.once('end', w.onEnd);
    socket.on('error', w.onError);
    this.waiting.set(socket, w);
    this.schedule();
  }

  /** Forgets a socket that closed or timed out while waiting (a no-op for one already admitted). */
  remove(socket: Socket): void {
    const w = this.waiting.get(socket);
    if (!w) return;
    this.waiting.delete(socket);
    this.detach(socket, w);
  }

  /** A handshake ended: there may be room for a waiting socket. */
  kick(): void {
    if (this.waiting.size > 0) this.schedule();
  }

  /** Stops admitting; the waiting sockets are the guard's to destroy (it counts them). */
  close(): void {
    this.closed = true;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = setImmediate(this.drain);
  }

  private readonly drain = (): void => {
    this.scheduled = undefined;
    if (this.closed) return;
    const until = performance.now() + this.opts.turnBudgetMs;
    for (const [socket, w] of this.waiting) {
      if (this.opts.inHandshake() >= this.opts.maxInHandshake) return; // kick() resumes when one ends
      this.waiting.delete(socket);
      this.admit(socket, w);
      if (performance.now() >= until) break;
    }
    if (this.waiting.size > 0) this.schedule(); // the rest on the next turn, after the poll phase has run
  };

  private admit(socket: Socket, w: Waiting): void {
    this.detach(socket, w);
    if (socket.destroyed) return;
    socket.pause(); // paused mode: the TLS socket takes over reading, starting with what we kept
    if (w.chunks.length > 0) socket.unshift(w.chunks.length === 1 ? (w.chunks[0] as Buffer) : Buffer.concat(w.chunks));
    this.opts.start(socket);
  }

  private detach(socket: Socket, w: Waiting): void {
    socket.off('data', w.onData);
    socket.off('end', w.onEnd);
    socket.off('error', w.onError);
  }
}
