import type pg from 'pg';
import type { Logger } from 'pino';
import type { StreamTransport } from '../stream/transport.ts';
import { ErrorCodes, SluiceError, toSluiceError, type ErrorCode } from '../errors.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import type { Hub, Subscriber } from '../hub/hub.ts';
import { catchUp, ReplayAborted, replayHistory } from '../stream/catch-up.ts';
import { currentSnapshot, type HotFrom, type StreamRow } from '../db/since.ts';
import type { ReplaySlots } from '../stream/replay-slots.ts';
import { encodeCursor, type Cursor } from '../stream/cursor.ts';
import { toStreamReading, type Batch, type StreamReading } from '../stream/feed.ts';
import { covers, visibleIn, type Snapshot } from '../stream/snapshot.ts';
import { readingsFrame } from './protocol.ts';
import type { BufferBudget } from './buffer-budget.ts';
import type { PartnerIdentity } from '../tls/identity.ts';
import { hasAnyAccess, mayRead, type Access } from '../access/grants.ts';
import type { Metrics } from '../ops/metrics.ts';
import { MessageBudget } from './message-budget.ts';
import { errorFrame, parseClientMessage } from './protocol.ts';

export interface SessionLimits {
  /** Most SLUs one connection may subscribe to. */
  readonly maxSlus: number;
  /** Pending output (bytes not yet accepted by the socket) past which the client is cut off with 4408. */
  readonly maxBufferBytes: number;
  /** Rows per catch-up page (one frame each). */
  readonly catchUpPageRows: number;
  /** Largest text frame a client may send, bytes (bigger: close 1009 with a reason). */
  readonly maxPayloadBytes: number;
  /** Malformed messages tolerated before closing with 4400. */
  readonly maxBadMessages: number;
  /** Client messages per second (token bucket refill); 0 = no limit. */
  readonly messagesPerS: number;
  /** Client messages accepted at once (token bucket size). */
  readonly messageBurst: number;
  /** Messages over budget tolerated (since the bucket was last full) before closing with 4429. */
  readonly maxOverBudget: number;
  /** Send a progress frame (cursor only) to an idle client at most this often, ms. */
  readonly progressIntervalMs: number;
  /** A replaying client that has not taken a page (socket write done) within this long is cut off with 4408, ms. */
  readonly replayFlushTimeoutMs: number;
}

/** What a resume (since=) needs: its own connections, a way to cancel, the limits. */
export interface ReplayDeps {
  /** Replay connections only (REPLAY_MAX_CONCURRENT of them): replays never take the REST API's connections. */
  readonly pool: pg.Pool;
  /** The main pool, for pg_cancel_backend when a replaying client goes away mid-query. */
  readonly canceller: pg.Pool;
  readonly slots: ReplaySlots;
  /** Cursors older than this are refused with 4410, seconds. */
  readonly windowS: number;
  /** Where the hot partitions begin (PartitionMap.hotFrom). */
  readonly hotFrom?: HotFrom;
}

type Mode = 'catching-up' | 'live';

/**
 * One WebSocket client: its subscription, its position (cursor), and the reconciliation between its own
 * catch-up and the shared live feed. While catching up, live batches are buffered; afterwards rows the catch-up
 * already sent (visible in its snapshot Q, the "floor") are dropped until the feed has moved past Q, then the
 * client joins the hub's fast path.
 */
export class Session implements Subscriber {
  /** What the hub delivers: the SLUs subscribed and granted, or null for every SLU (all subscribed, all granted). */
  sluIds: Set<number> | null;
  /** Subscribed to "all": every SLU the partner is granted, now and as grants change. */
  private wantsAll: boolean;
  private mode: Mode = 'live';
  private floor: Snapshot | undefined;
  private held: StreamReading[] = [];
  private buffered: Array<{ batch: Batch; cursorText: string }> = [];
  /** Readings in `buffered`; past a bound the buffer is dropped and the replay runs another round instead. */
  private bufferedReadings = 0;
  private overflowed = false;
  /** Aborted when the connection ends: a running replay's query is cancelled and no further page is read. */
  private readonly abort = new AbortController();
  /** Settles when no replay of this session runs any more (the partner's connection slot is freed then). */
  replayDone: Promise<void> = Promise.resolve();
  private lastCursorText = '';
  private lastSentAt = Date.now();
  private badMessages = 0;
  /** Created with the first client message (most clients never send one). */
  private budget: MessageBudget | undefined;
  private closed = false;
  alive = true;
  /** When the heartbeat last pinged this client (its connect time until then). */
  pingedAt = Date.now();

  constructor(
    readonly ws: StreamTransport,
    readonly partner: PartnerIdentity,
    sluIds: readonly number[] | null,
    private access: Access,
    private readonly hub: Hub,
    private readonly replay: ReplayDeps,
    private readonly cache: ReadingCache,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
    private readonly buffers?: BufferBudget,
  ) {
    this.wantsAll = sluIds === null;
    this.sluIds = sluIds === null ? allOf(access) : new Set(sluIds.filter((id) => mayRead(access, id)));
  }

  private wants(sluId: number): boolean {
    return this.sluIds === null || this.sluIds.has(sluId);
  }

  /**
   * The partner's grants changed (sql/004 NOTIFY, reloaded by Grants): stop at once for what is no longer
   * granted, tell the client which SLUs, and close with 4403 when nothing is left. "All" follows the grants.
   */
  applyAccess(a: Access | null): void {
    if (this.closed) return;
    if (a === null) return this.close('SLUICE_ERR_DB_UNAVAILABLE', 'grants changed and could not be read again; reconnect with since=<your last cursor>');
    this.access = a;
    if (!hasAnyAccess(a)) return this.close('SLUICE_ERR_NO_GRANTS', 'every grant of this partner was revoked');
    const before = this.sluIds;
    this.sluIds = this.wantsAll ? allOf(a) : new Set([...(before ?? [])].filter((id) => mayRead(a, id)));
    this.held = this.held.filter((r) => this.wants(r.sluId));
    this.hub.reindex(this);
    if (before === null) {
      if (this.sluIds !== null) {
        this.sendRaw(JSON.stringify({ type: 'error', code: 'SLUICE_ERR_GRANT_REVOKED', message: `grants changed: "all" now means the ${this.sluIds.size} SLUs this partner is granted` }));
      }
      return;
    }
    const lost = [...before].filter((id) => !this.wants(id)).sort((x, y) => x - y);
    if (lost.length > 0) {
      this.log.info({ partner: this.partner.cn, slu_ids: lost }, 'grant revoked; stream stopped for these SLUs');
      this.sendRaw(JSON.stringify({ type: 'error', code: 'SLUICE_ERR_GRANT_REVOKED', message: `grant revoked for slu_id ${lost.join(', ')}; no more readings of them are sent`, slu_ids: lost }));
    }
  }

  /** Tells the client which requested SLUs it is not granted (they are not subscribed). */
  refuseForbidden(ids: readonly number[]): void {
    if (ids.length === 0) return;
    const sorted = [...ids].sort((x, y) => x - y);
    this.log.warn({ partner: this.partner.cn, slu_ids: sorted }, 'refused: SLU not granted');
    this.sendRaw(JSON.stringify({ type: 'error', code: 'SLUICE_ERR_SLU_FORBIDDEN', message: `partner "${this.partner.cn}" is not granted slu_id ${sorted.join(', ')}; not subscribed`, slu_ids: sorted }));
  }

  /** True once the session was closed by the gateway or its socket went away. */
  get isClosed(): boolean {
    return this.closed;
  }

  get fast(): boolean {
    return this.mode === 'live' && this.floor === undefined && !this.closed;
  }

  /**
   * Joins the live stream now, or after replaying everything since `since`. A replay takes one of the gateway's
   * replay slots (or is refused with 4429 / 1013), reads one page at a time on a replay connection and sends
   * the next only once the previous one has left the process, and stops (its query cancelled) when the client
   * goes away. Live batches that arrive meanwhile are buffered up to two pages; past that the buffer is dropped
   * and another round replays from where this one ended (the table holds those rows anyway).
   */
  async start(since: Cursor | undefined, fromTime?: number): Promise<void> {
    if (!since && fromTime !== undefined) {
      // from=: a history from that time up to a snapshot taken now, then everything since (replayHistory).
      try {
        since = { kind: 'history', from: fromTime, q: await currentSnapshot(this.replay.canceller) };
      } catch (err) {
        return this.fail(toSluiceError(err));
      }
      if (this.closed) return;
    }
    if (!since) {
      this.lastCursorText = this.hub.currentCursor;
      this.hub.add(this);
      this.sendRaw(this.subscribedFrame());
      return;
    }
    this.mode = 'catching-up';
    this.hub.add(this); // buffer live batches from now on (also while waiting for a slot)
    this.sendRaw(this.subscribedFrame(encodeCursor(since)));
    const slot = await this.replay.slots.acquire(this.partner.cn, this.abort.signal);
    if (slot === 'aborted') return;
    if (slot !== 'ok') {
      this.metrics?.refusals.inc({ code: slot });
      this.log.warn({ partner: this.partner.cn, code: slot, running: this.replay.slots.running }, 'refused: replay limit');
      const message =
        slot === 'SLUICE_ERR_REPLAY_LIMIT'
          ? `partner "${this.partner.cn}" ran ${this.replay.slots.maxPerPartner} resumes at once for ${this.replay.slots.waitMs} ms; retry with the same cursor`
          : `this gateway ran ${this.replay.slots.max} resumes at once for ${this.replay.slots.waitMs} ms; retry with the same cursor in a few seconds`;
      return this.fail(new SluiceError(slot, message));
    }
    let done = (): void => undefined;
    this.replayDone = new Promise((r) => (done = r));
    let replayed = 0;
    let client: pg.PoolClient | undefined;
    let broken = false;
    try {
      client = await this.replay.pool.connect();
      let from = since;
      let q: Snapshot;
      for (;;) {
        this.buffered = [];
        this.bufferedReadings = 0;
        this.overflowed = false;
        const opts = {
          pageRows: this.limits.catchUpPageRows,
          windowS: this.replay.windowS,
          ...(this.replay.hotFrom ? { hotFrom: this.replay.hotFrom } : {}),
          signal: this.abort.signal,
          send: (rows: StreamRow[], cursor: Cursor) => {
            // Filtered again: a grant may have been revoked while this catch-up ran.
            const readings = rows.map((r) => toStreamReading(r, this.cache)).filter((r) => this.wants(r.sluId));
            replayed += readings.length;
            const cursorText = encodeCursor(cursor);
            this.lastCursorText = cursorText;
            this.lastSentAt = Date.now();
            return this.sendFlushed(readingsFrame(readings.map((r) => r.json), cursorText));
          },
        };
        const slus = this.sluIds ? [...this.sluIds] : null;
        q = from.kind === 'history' ? await replayHistory(client, this.replay.canceller, from, slus, opts) : await catchUp(client, this.replay.canceller, from, slus, opts);
        if (!this.overflowed || this.closed) break;
        from = { kind: 'settled', s: q };
      }
      if (this.closed) return;
      this.metrics?.catchUpRows.observe(replayed);
      this.floor = q;
      this.lastCursorText = encodeCursor({ kind: 'settled', s: q });
      this.mode = 'live';
      this.hub.fastChanged(this);
      const pending = this.buffered;
      this.buffered = [];
      this.bufferedReadings = 0;
      for (const { batch, cursorText } of pending) this.onBatch(batch, cursorText);
    } catch (err) {
      // A connection whose query was cancelled or failed is not given back to the pool: a late cancel must not hit
      // the next replay's query on it.
      broken = !(err instanceof SluiceError);
      if (err instanceof ReplayAborted || this.closed) return;
      const e = toSluiceError(err);
      if (e.code === 'SLUICE_ERR_INTERNAL') this.log.error({ err, partner: this.partner.cn }, 'catch-up failed');
      this.fail(e);
    } finally {
      client?.release(broken || undefined);
      this.replay.slots.release(this.partner.cn);
      done();
    }
  }

  /** Sends a replay page and resolves once the socket has taken it (or rejects when the client is gone or stuck). */
  private sendFlushed(text: string): Promise<void> {
    if (this.closed) return Promise.reject(new ReplayAborted());
    if (this.ws.bufferedAmount > this.limits.maxBufferBytes) {
      this.close('SLUICE_ERR_SLOW_CONSUMER', `more than ${this.limits.maxBufferBytes} bytes unread; reconnect with since=<your last cursor>`);
      return Promise.reject(new ReplayAborted());
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close('SLUICE_ERR_SLOW_CONSUMER', `a replay page was not taken within ${this.limits.replayFlushTimeoutMs} ms; reconnect with since=<your last cursor>`);
        reject(new ReplayAborted());
      }, this.limits.replayFlushTimeoutMs);
      this.ws.send(text, (err) => {
        clearTimeout(timer);
        if (err || this.closed) reject(new ReplayAborted());
        else resolve();
      });
    });
  }

  /** The whole subscription ("all" or every id): the first frame, and the answer when all of it was replaced. */
  private subscribedFrame(cursorText = this.lastCursorText): string {
    return JSON.stringify({ type: 'subscribed', slu_ids: this.wantsAll ? 'all' : [...(this.sluIds ?? [])].sort((a, b) => a - b), count: this.count(), cursor: cursorText });
  }

  /** SLUs this connection receives; null for every SLU (subscribed to all, everything granted). */
  private count(): number | null {
    return this.sluIds === null ? null : this.sluIds.size;
  }

  /** The answer to a subscribe/unsubscribe that changed part of a list: only that part, and the new count. */
  private changeFrame(type: 'subscribed' | 'unsubscribed', key: 'added' | 'removed', ids: number[]): string {
    return JSON.stringify({ type, [key]: ids.sort((a, b) => a - b), count: this.count(), cursor: this.lastCursorText });
  }

  // --- Subscriber (called by the hub)

  sendFrame(frame: string, cursorText: string): void {
    this.lastCursorText = cursorText;
    this.lastSentAt = Date.now();
    this.sendRaw(frame);
  }

  onIdle(cursorText: string): void {
    if (this.mode !== 'live' || this.floor) return;
    const now = Date.now();
    if (cursorText !== this.lastCursorText && now - this.lastSentAt >= this.limits.progressIntervalMs) {
      // Keeps an idle client's cursor fresh, so its resume does not replay from long ago.
      this.lastCursorText = cursorText;
      this.lastSentAt = now;
      this.sendRaw('{"type":"progress","cursor":"' + cursorText + '"}');
    }
  }

  /**
   * A change (UPDATE, DELETE, TRUNCATE) committed: live batches buffered during a replay may hold readings the
   * table no longer has (or has under another SLU). They are dropped and the replay runs another round from where
   * it ends, which reads the table as it is now. (Readings held behind a floor wait at most one feed read.)
   */
  onTableChange(): void {
    if (this.mode !== 'catching-up') return;
    this.buffered = [];
    this.bufferedReadings = 0;
    this.overflowed = true;
  }

  onBatch(batch: Batch, cursorText: string): void {
    if (this.closed) return;
    if (this.mode === 'catching-up') {
      if (this.overflowed) return; // the next replay round reads these rows from the table
      this.bufferedReadings += batch.readings.length;
      if (this.bufferedReadings > 2 * this.limits.catchUpPageRows) {
        this.buffered = [];
        this.bufferedReadings = 0;
        this.overflowed = true;
        return;
      }
      this.buffered.push({ batch, cursorText });
      return;
    }
    const mine = batch.readings.filter((r) => this.wants(r.sluId) && !(this.floor && visibleIn(r.xid, this.floor)));
    if (this.floor) {
      if (batch.snapshot && covers(batch.snapshot, this.floor)) {
        // The feed is past everything the catch-up sent: from here on the shared fast path serves this client.
        this.floor = undefined;
        this.hub.fastChanged(this);
        const out = this.held.concat(mine);
        this.held = [];
        if (out.length > 0) this.sendReadings(out.map((r) => r.json), cursorText);
        else this.onIdle(cursorText);
      } else {
        // A batch read before Q (or part of a backlog page): what is left is sent with the first covering batch.
        for (const r of mine) this.held.push(r);
      }
      return;
    }
    if (mine.length > 0) this.sendReadings(mine.map((r) => r.json), cursorText);
    else this.onIdle(cursorText);
  }

  private sendReadings(jsons: string[], cursorText: string): void {
    this.sendFrame(readingsFrame(jsons, cursorText), cursorText);
  }

  private sendRaw(text: string): void {
    if (this.closed) return;
    if (this.ws.bufferedAmount > this.limits.maxBufferBytes) {
      this.close('SLUICE_ERR_SLOW_CONSUMER', `more than ${this.limits.maxBufferBytes} bytes unread; reconnect with since=<your last cursor>`);
      return;
    }
    if (this.buffers && !this.buffers.onSend(this, text.length)) {
      this.close('SLUICE_ERR_SLOW_CONSUMER', `partner "${this.partner.cn}"'s streams hold more than ${this.buffers.maxPartnerBytes} unread bytes; reconnect with since=<your last cursor>`);
      return;
    }
    this.ws.send(text);
  }

  // --- BufferBudget

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  cutOff(reason: string): void {
    this.close('SLUICE_ERR_SLOW_CONSUMER', reason);
  }

  // --- client messages

  onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.closed) return;
    if (isBinary) {
      this.close('SLUICE_ERR_BINARY', 'binary frames are not accepted; send JSON text frames');
      return;
    }
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
    if (size > this.limits.maxPayloadBytes) {
      this.close('SLUICE_ERR_FRAME_TOO_LARGE', `a frame of ${size} bytes; at most ${this.limits.maxPayloadBytes}`);
      return;
    }
    // Before parsing, so that a flood costs as little as possible: 2,000 subscribe messages from one client of
    // 10,000 SLUs stalled the event loop, and every other partner's REST and stream with it, for 0.4 s.
    if (!this.withinBudget()) return;
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return this.reject('SLUICE_ERR_BAD_MESSAGE', parsed.message);
    const msg = parsed.msg;
    if (msg.type === 'ping') {
      this.sendRaw(JSON.stringify({ type: 'pong', ...(msg.id !== undefined ? { id: msg.id } : {}), cursor: this.lastCursorText }));
      return;
    }
    if (msg.type === 'subscribe') return msg.all ? this.subscribeAll() : this.subscribe(msg.slu_ids ?? []);
    if (msg.all) return this.unsubscribeAll();
    this.unsubscribe(msg.slu_ids ?? []);
  }

  /** Takes the message from the connection's budget; false when over it (error frame, or 4429 when it keeps on). */
  private withinBudget(): boolean {
    const budget = (this.budget ??= new MessageBudget(this.limits.messagesPerS, this.limits.messageBurst));
    if (budget.take()) return true;
    const rate = `${this.limits.messagesPerS} messages/s (bursts of ${this.limits.messageBurst})`;
    if (budget.strikes > this.limits.maxOverBudget) {
      this.log.warn({ partner: this.partner.cn, strikes: budget.strikes }, 'closing stream: client keeps sending over its message budget');
      this.close('SLUICE_ERR_MESSAGE_RATE', `kept sending more than ${rate}`);
    } else {
      this.sendRaw(errorFrame('SLUICE_ERR_MESSAGE_RATE', `over the budget of ${rate}; this message was dropped`));
    }
    return false;
  }

  // Each change below costs the size of the message, not of the subscription: the set is changed in place, the
  // hub is told only what changed, and the answer lists only what changed (plus the count), whatever the size
  // of the subscription.

  private subscribe(asked: readonly number[]): void {
    const forbidden: number[] = [];
    const fresh = new Set<number>();
    for (const id of asked) {
      if (!mayRead(this.access, id)) forbidden.push(id);
      else if (!this.wantsAll && !this.sluIds?.has(id)) fresh.add(id);
    }
    this.refuseForbidden(forbidden);
    const ids = this.sluIds;
    // Under "all" every granted SLU is already subscribed.
    if (this.wantsAll || ids === null) return this.sendRaw(this.subscribedFrame());
    if (ids.size + fresh.size > this.limits.maxSlus) {
      return this.reject('SLUICE_ERR_TOO_MANY_SLUS', `at most ${this.limits.maxSlus} SLUs per connection (this would make ${ids.size + fresh.size}); subscribe to all with {"type":"subscribe","all":true}`);
    }
    for (const id of fresh) ids.add(id);
    this.hub.changed(this, fresh, []);
    this.sendRaw(this.changeFrame('subscribed', 'added', [...fresh]));
  }

  private subscribeAll(): void {
    // Already "all": applyAccess keeps the set in step with the grants, nothing to redo.
    if (!this.wantsAll) {
      this.wantsAll = true;
      this.sluIds = allOf(this.access);
      this.hub.reindex(this);
    }
    this.sendRaw(this.subscribedFrame());
  }

  private unsubscribe(ids: readonly number[]): void {
    if (this.wantsAll || this.sluIds === null) {
      return this.reject('SLUICE_ERR_BAD_MESSAGE', 'this connection is subscribed to all SLUs; unsubscribe with {"type":"unsubscribe","all":true} and subscribe to a list');
    }
    const removed: number[] = [];
    for (const id of ids) if (this.sluIds.delete(id)) removed.push(id);
    this.hub.changed(this, [], removed);
    this.sendRaw(this.changeFrame('unsubscribed', 'removed', removed));
  }

  private unsubscribeAll(): void {
    this.wantsAll = false;
    this.sluIds = new Set();
    this.hub.reindex(this);
    this.sendRaw(JSON.stringify({ type: 'unsubscribed', slu_ids: [], count: 0, cursor: this.lastCursorText }));
  }

  /** An error frame; too many of them and the connection is closed (the process is never affected). */
  reject(code: ErrorCode, message: string): void {
    this.sendRaw(errorFrame(code, message));
    if (++this.badMessages > this.limits.maxBadMessages) this.close('SLUICE_ERR_BAD_MESSAGE', 'too many invalid messages');
  }

  fail(err: SluiceError): void {
    this.sendRaw(errorFrame(err.code, err.message));
    this.close(err.code, err.message);
  }

  /** Closes with the catalogue's close code and a reason (trimmed to the 123 bytes a close frame allows). */
  close(code: ErrorCode, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.hub.remove(this);
    this.buffered = [];
    const wsCode = ErrorCodes[code].wsClose || 1011;
    this.metrics?.streamCloses.inc({ code });
    this.log.info({ partner: this.partner.cn, code, wsCode }, 'closing stream');
    this.ws.close(wsCode, truncateReason(`${code}: ${reason}`));
    // A peer that does not read will not read the close frame either: do not wait for it.
    setTimeout(() => this.ws.terminate(), code === 'SLUICE_ERR_SLOW_CONSUMER' ? 1000 : 5000).unref();
  }

  /** The socket went away (any reason). */
  dispose(): void {
    this.closed = true;
    this.abort.abort();
    this.hub.remove(this);
    this.buffered = [];
    this.held = [];
  }
}

/** The hub's view of "all SLUs" for an access: null (no filter) when everything is granted. */
function allOf(a: Access): Set<number> | null {
  return a.all ? null : new Set(a.slus);
}

function truncateReason(s: string): string {
  let b = Buffer.from(s);
  if (b.length <= 123) return s;
  b = b.subarray(0, 120);
  return b.toString('utf8').replace(/\uFFFD+$/, '') + '...';
}
