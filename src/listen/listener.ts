import { EventEmitter } from 'node:events';
import pgListen, { type Subscriber } from 'pg-listen';
import type { Logger } from 'pino';

/** The NOTIFY channel the trigger in sql/002_stream.sql uses. */
export const CHANNEL = 'sluice_reading';
/** Readings changed other than by INSERT (sql/005_reading_changes.sql): derived state must be rebuilt. */
export const CHANGE_CHANNEL = 'sluice_reading_change';
/** LISTENed and UNLISTENed in turn by Listener.probe; nothing NOTIFYs it. */
const PROBE_CHANNEL = 'sluice_probe';
/** The NOTIFY channel of grant changes (sql/004_partner_grant.sql); same connection, one LISTEN each. */
export const GRANT_CHANNEL = 'sluice_grant';

/** Listener health: `listening` is the only state in which new readings arrive at once. */
export type ListenerState = 'connecting' | 'listening' | 'reconnecting' | 'closed';

export interface ListenerEvents {
  /** LISTEN is (again) in place: read everything committed meanwhile. */
  listening: [];
  /**
   * A NOTIFY arrived on the readings channel. Payload: the writing transaction's id (a wake-up), or a small
   * statement's rows with their MAC (sql/014), for the feed's fast path.
   */
  notify: [string];
  /** A partner's grants changed (payload: the partner name). */
  grant: [string];
  /** Readings were deleted, updated or truncated (payload: the operation). */
  change: [string];
  state: [ListenerState];
}

export interface ListenerOptions {
  readonly connectionString: string;
  /** First reconnect delay, doubled per attempt up to the cap; each delay gets +-50% jitter. */
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
  /** How often a trivial query checks that a quiet connection is still alive, ms. */
  readonly healthCheckMs: number;
}

/** Capped exponential backoff with jitter (0.5x..1x), so many gateways do not reconnect in lockstep. */
export function backoffMs(attempt: number, baseMs: number, capMs: number): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(exp * (0.5 + Math.random() / 2));
}

/**
 * One dedicated LISTEN connection per process (pg-listen). It reconnects forever: pg-listen's default gives up
 * after 3 s of downtime (pg-listen#56), so retryTimeout is infinite here. Every time LISTEN is in place again,
 * `listening` fires so the feed can catch up on what committed while it was away (NOTIFY does not queue).
 */
export class Listener extends EventEmitter<ListenerEvents> {
  private readonly sub: Subscriber;
  private current: ListenerState = 'connecting';
  /** How many times the connection was re-established (for metrics and tests). */
  reconnects = 0;

  constructor(
    opts: ListenerOptions,
    private readonly log: Logger,
  ) {
    super();
    // pg-listen is CommonJS with `exports.default`.
    this.sub = pgListen.default(
      { connectionString: opts.connectionString, application_name: 'sluice-listen' },
      {
        retryLimit: Number.POSITIVE_INFINITY,
        retryTimeout: Number.POSITIVE_INFINITY,
        retryInterval: (attempt: number) => backoffMs(attempt, opts.retryBaseMs, opts.retryCapMs),
        paranoidChecking: opts.healthCheckMs,
        // Payloads are transaction ids, partner names or packed rows: keep them as text.
        parse: (s: string) => s,
      },
    );
    this.sub.events.on('connected', () => {
      // The first 'connected' comes before LISTEN; start() announces that one itself, once LISTEN is in place.
      // On reconnects pg-listen re-issues LISTEN before emitting 'connected'.
      if (this.current === 'connecting') return;
      if (this.current === 'reconnecting') this.reconnects++;
      this.setState('listening');
      this.emit('listening');
    });
    this.sub.events.on('reconnect', (attempt) => {
      this.setState('reconnecting');
      if (attempt === 1 || attempt % 10 === 0) this.log.warn({ attempt }, 'LISTEN connection lost; reconnecting');
    });
    this.sub.events.on('error', (err) => this.log.error({ err: err.message }, 'LISTEN connection error'));
    this.sub.events.on('notification', (n) => {
      if (n.channel === GRANT_CHANNEL) this.emit('grant', String(n.payload));
      else if (n.channel === CHANGE_CHANNEL) this.emit('change', String(n.payload));
      else this.emit('notify', String(n.payload ?? ''));
    });
  }

  get state(): ListenerState {
    return this.current;
  }

  private setState(s: ListenerState): void {
    if (s === this.current) return;
    this.current = s;
    this.log.info({ listener: s }, `listener ${s}`);
    this.emit('state', s);
  }

  /**
   * A round trip on the LISTEN connection. PostgreSQL sends a committed transaction's notifications together, in
   * one pass, and reads the next query only after it: when this resolves, every notification of every
   * transaction that had begun to arrive before it was sent has arrived (the fast path relies on it, Feed.note).
   * LISTEN or UNLISTEN of a channel nobody NOTIFYs, so no notification queue lock is taken. Rejects when not
   * listening or after 2 s.
   */
  async probe(): Promise<void> {
    if (this.current !== 'listening') throw new Error('LISTEN is not in place');
    const q = this.sub.getSubscribedChannels().includes(PROBE_CHANNEL) ? this.sub.unlisten(PROBE_CHANNEL) : this.sub.listenTo(PROBE_CHANNEL);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([q, new Promise((_r, reject) => (timer = setTimeout(() => reject(new Error('probe timed out')), 2000)))]);
    } finally {
      clearTimeout(timer);
    }
  }

  async start(): Promise<void> {
    await this.sub.connect();
    await this.sub.listenTo(CHANNEL);
    await this.sub.listenTo(GRANT_CHANNEL);
    await this.sub.listenTo(CHANGE_CHANNEL);
    this.setState('listening');
    this.emit('listening');
  }

  async close(): Promise<void> {
    this.setState('closed');
    await this.sub.close().catch(() => undefined);
  }
}
