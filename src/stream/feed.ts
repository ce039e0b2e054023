import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from 'pino';
import { catchUpPage, currentPosition, readSince, streamRowKey, type HotFrom, type StreamRow } from '../db/since.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatPacked, keyId, keyXid, latestJson, packedKey, readingT, type FormattedReading } from '../format/reading.ts';
import { toSluiceError } from '../errors.ts';
import { aheadAdd, aheadHas, aheadOf, aheadRanges, MAX_AHEAD_RANGES, MAX_AHEAD_XIDS } from './ahead.ts';
import { verifiedRows } from './payload.ts';
import type { Cursor } from './cursor.ts';
import { visibleIn, type Snapshot } from './snapshot.ts';

/** One committed reading as the stream carries it, serialised once for every subscriber. */
export interface StreamReading {
  readonly id: number;
  readonly xid: number;
  readonly sluId: number;
  /** Legacy text of t, comparable as a string (fixed width). */
  readonly t: string;
  readonly formatted: FormattedReading;
  /** The /latest object text: what stream frames carry. */
  readonly json: string;
}

/**
 * What the feed read in one step. `cursor` is the position after it. `snapshot` is set when the step ended on
 * a snapshot (everything committed before it has now been read); a long backlog is read in pages whose cursors
 * are paging cursors and have no snapshot until the last.
 */
export interface Batch {
  readonly readings: readonly StreamReading[];
  readonly cursor: Cursor;
  readonly snapshot?: Snapshot;
}

export interface FeedOptions {
  /** Rows per query when reading a backlog. */
  readonly pageRows: number;
  /** Read the table this often even without a NOTIFY (a safety net and cursor refresh), ms. */
  readonly pollIntervalMs: number;
  /** `pool` is the feed's own one-connection pool (set up for prepared statements): read with a named statement. */
  readonly prepared?: boolean;
  /** Where the hot partitions begin (PartitionMap.hotFrom); unset, every partition is read directly. */
  readonly hotFrom?: HotFrom;
  /** Deliver rows carried by NOTIFY payloads (sql/014) at once. Default true. */
  readonly fastPath?: boolean;
  /** After a payload went out, read to confirm it within this many ms (reads coalesce meanwhile). Default 0. */
  readonly confirmMs?: number;
  /**
   * A round trip on the LISTEN connection (Listener.probe): resolves once everything PostgreSQL sent on it
   * before has arrived. Without it, payloads are not used.
   */
  readonly probe?: () => Promise<void>;
}

/** A notification as note() keeps it until a probe proves its transaction complete. */
type Noted = { kind: 'change' } | { kind: 'wake'; xid: number } | { kind: 'rows'; xid: number; rows: string[] };

/** Wake-up transactions remembered between two reads; past this the fast path simply waits for the next read. */
const MAX_BLOCKERS = 10_000;
/** Notifications held for one probe (each up to 8 KB of rows); past this only their transaction ids are kept. */
const MAX_NOTED = 2_000;

export interface FeedEvents {
  batch: [Batch];
  /**
   * Readings were updated, deleted or truncated (sql/006's counter moved) at or before the snapshot of the batch
   * that follows. Emitted before that batch, so state derived from the table can be dropped before new rows land.
   */
  change: [];
  /** Grants changed (sql/008's counter moved) at or before the snapshot of the batch that follows. */
  grants: [];
  /** A database read completed (seconds), whether or not it found anything. */
  read: [number];
  error: [Error];
}

/** A backlog read in pages from `from` toward the fixed bound `q`; `startNo` numbers the read that began it. */
interface PagingState {
  readonly from: Snapshot;
  readonly q: Snapshot;
  after: [number, number];
  readonly startNo: number;
}

/** sql/014's MAC key, or undefined (with a note in the log) when this role cannot read it. */
async function readNotifyKey(pool: pg.Pool, log: Logger): Promise<Buffer | undefined> {
  try {
    const r = await pool.query<{ key: Buffer }>('select key from sluice_notify_key');
    return r.rows[0]?.key;
  } catch (err) {
    log.info({ err: (err as Error).message }, 'cannot read sluice_notify_key: readings are delivered by reads only (no fast path)');
    return undefined;
  }
}

/**
 * Converts a database row into a StreamReading, reusing/filling the formatted cache. The cache is keyed by the
 * row's version (id, xid), so what it returns is this very row: its SLU and values, never those of an earlier
 * row that had the same id.
 */
export function toStreamReading(row: StreamRow, cache: ReadingCache): StreamReading {
  const key = packedKey(row[0]);
  let formatted = cache.get(key);
  if (!formatted) {
    formatted = formatPacked(row[0], key).formatted;
    cache.set(key, formatted);
  }
  return { id: Number(keyId(key)), xid: Number(keyXid(key)), sluId: formatted.sluId, t: readingT(formatted), formatted, json: latestJson(formatted) };
}

/**
 * The gateway's single reader of new readings. NOTIFY only says "something committed"; the feed then reads the
 * table for everything that became visible since its last snapshot. Because visibility, not ids or timestamps,
 * defines what is new, transactions that commit out of id order are neither missed nor repeated, and after a
 * lost connection the next read simply covers the whole gap. At most one read runs at a time; wake-ups during a
 * read coalesce into one more read (so a burst of commits becomes one batch: one frame per client per tick).
 */
export class Feed extends EventEmitter<FeedEvents> {
  private snap: Snapshot | undefined;
  /** The change counter (sql/006) as of `snap`. */
  private changes = '';
  private paging: PagingState | undefined;
  /**
   * The fast path's state. `ahead`: rows delivered from payloads of transactions `snap` does not see yet (every
   * cursor carries them; every read skips them). `blockers`: transactions announced by a wake-up only (or whose
   * payload could not be taken), not read yet: while there are any, payloads wait for the read too, so a writer's
   * transactions still arrive in commit order. `barrier`: no payload is taken until a read that started after
   * this many reads had started completes (after LISTEN came back, or a change: what committed meanwhile is
   * read first). `notifyKey`: sql/014's MAC key; unset (unreadable), payloads are ignored and only reads deliver.
   */
  private ahead = new Map<number, Array<[number, number]>>();
  private blockers = new Map<number, number>();
  /** Notifications since the last probe was sent, in arrival order (see note). */
  private noted: Noted[] = [];
  private probing = false;
  /** Grant reloads in flight: deliveries wait for them (see hold). */
  private readonly gates = new Set<Promise<void>>();
  private barrier: number | undefined = 0;
  private listening = false;
  private readStarts = 0;
  private notifyKey: Buffer | undefined;
  private running = false;
  private dirty = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = 0;
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** Ends a retry back-off early: someone is waiting for an answer now (see sync). */
  private cutBackoff: (() => void) | undefined;
  /** Reads done and rows delivered, for metrics and tests. */
  readonly stats = { polls: 0, rows: 0, errors: 0, fastRows: 0, forged: 0, waited: 0 };
  private forgedLoggedAt = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly cache: ReadingCache,
    private readonly log: Logger,
    private readonly opts: FeedOptions,
  ) {
    super();
  }

  /** Starts at the database's current snapshot: what committed before is history (served through cursors). */
  async start(): Promise<Snapshot> {
    const at = await currentPosition(this.pool);
    this.snap = at.snapshot;
    this.changes = at.changes;
    if (this.opts.fastPath !== false) this.notifyKey = await readNotifyKey(this.pool, this.log);
    this.timer = setInterval(() => this.wake(), this.opts.pollIntervalMs);
    this.timer.unref();
    return this.snap;
  }

  /** The snapshot up to which everything has been read and emitted. */
  get snapshot(): Snapshot {
    if (!this.snap) throw new Error('Feed.start() has not completed');
    return this.snap;
  }

  /**
   * LISTEN is in place (true) or not. While it is not, payloads are not taken (commits meanwhile send nothing);
   * when it is again, they wait for a read that started after this moment, which covers what committed meanwhile.
   */
  setListening(on: boolean): void {
    this.listening = on;
    if (on) this.holdFast();
  }

  /** True when a payload arriving now would be delivered at once (tests wait for it). */
  get fastReady(): boolean {
    return this.notifyKey !== undefined && this.listening && this.barrier === undefined && !this.paging && this.blockers.size === 0 && this.gates.size === 0;
  }

  /** Payloads wait until a read that starts after this call has completed (a change, or LISTEN came back). */
  holdFast(): void {
    this.barrier = this.readStarts;
  }

  /**
   * A notification of the readings channels, in arrival order (live.ts passes every one): a `reading` payload of
   * sql/014 (a wake-up carrying a transaction id, or a small statement's rows with their MAC) or a `change` (an
   * UPDATE, DELETE or TRUNCATE committed). Rows are not delivered when they arrive but once the listener's
   * connection has answered a probe sent after them (FeedOptions.probe): PostgreSQL sends a committed
   * transaction's notifications together, so by then every notification of every transaction seen so far is
   * here. Only then is it known which rows a transaction inserted in all, and that it changed nothing after
   * inserting them (its change notification would be here too). Returns true when the caller should read at
   * once, false when the read may wait (wakeSoon): the payload's rows will go out without it.
   */
  note(kind: 'reading' | 'change', payload: string): boolean {
    if (this.closed || !this.snap) return true;
    if (kind === 'change') {
      this.holdFast();
      this.push({ kind: 'change' });
      return true;
    }
    if (payload.charCodeAt(0) !== 114 /* r */) {
      const xid = Number(payload);
      if (Number.isSafeInteger(xid)) this.push({ kind: 'wake', xid });
      return true;
    }
    if (!this.notifyKey || !this.opts.probe) return true;
    const rows = verifiedRows(this.notifyKey, payload);
    if (!rows) {
      this.stats.forged++;
      if (Date.now() - this.forgedLoggedAt > 1000) {
        this.forgedLoggedAt = Date.now();
        this.log.warn('a NOTIFY on sluice_reading carried rows without a valid MAC: ignored (someone other than sql/014 sent it)');
      }
      return false;
    }
    this.push({ kind: 'rows', xid: Number(keyXid(rows[0] as string)), rows });
    return false;
  }

  private push(n: Noted): void {
    // Bounded: past MAX_NOTED a payload keeps only its transaction id, and its rows come with the read.
    this.noted.push(n.kind === 'rows' && this.noted.length >= MAX_NOTED ? { kind: 'wake', xid: n.xid } : n);
    if (!this.probing) this.probe();
  }

  /** Probes the listener's connection; what arrived before its answer is complete (see note). */
  private probe(): void {
    const probe = this.opts.probe;
    const batch = this.noted;
    if (!probe || batch.length === 0) return;
    this.probing = true;
    probe().then(
      () => this.process(),
      () => this.process(true),
    ).finally(() => {
      this.probing = false;
      if (this.noted.length > 0 && !this.closed) this.probe();
    });
  }

  /** Takes what a probe proved complete: rows go out now, or are left to the read (failed: all of them are). */
  private process(failed = false): void {
    const batch = this.noted;
    this.noted = [];
    const snap = this.snap;
    if (this.closed || !snap) return;
    // A change anywhere in the batch may be of a transaction that inserted first: none of its payloads is the
    // committed version then. Which transaction changed is not known, so every payload of the batch waits.
    const changed = failed || batch.some((n) => n.kind === 'change');
    const byXid = new Map<number, string[][]>();
    for (const n of batch) if (n.kind === 'rows') byXid.get(n.xid)?.push(n.rows) ?? byXid.set(n.xid, [n.rows]);
    let waited = false;
    for (const n of batch) {
      if (n.kind === 'wake') {
        if (!visibleIn(n.xid, snap)) {
          this.block(n.xid);
          waited = true; // a read that starts from here on clears it (or proves it was never committed)
        }
        continue;
      }
      if (n.kind !== 'rows') continue;
      const chunks = byXid.get(n.xid);
      if (!chunks) continue; // this transaction was handled at its first chunk
      byXid.delete(n.xid);
      if (visibleIn(n.xid, snap) || this.ahead.has(n.xid)) continue; // delivered by a read, or chunks sent again
      if (changed || !this.fastReady || !this.deliverFast(n.xid, chunks, snap)) {
        waited = true;
        this.stats.waited += chunks.length;
        this.block(n.xid);
      }
    }
    if (waited) this.wake();
  }

  /**
   * Delivers one whole transaction from its payload chunks, recording one range per chunk (the span of its ids)
   * in `ahead`. A chunk carries every row of its statement inside that span, and the batch holds every statement
   * of the transaction, so the spans must not overlap (ids a writer set itself can make them; then the read
   * delivers). False, with nothing changed, when they overlap or the cursor has no room.
   */
  private deliverFast(xid: number, chunks: string[][], snap: Snapshot): boolean {
    const spans: Array<[number, number]> = [];
    for (const rows of chunks) {
      let lo = Number.NaN;
      let hi = Number.NaN;
      for (const packed of rows) {
        const key = packedKey(packed);
        const id = Number(keyId(key));
        if (Number(keyXid(key)) !== xid || !(Number.isNaN(hi) || id > hi)) return false;
        if (Number.isNaN(lo)) lo = id;
        hi = id;
      }
      spans.push([lo, hi]);
    }
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) if ((spans[i] as [number, number])[0] <= (spans[i - 1] as [number, number])[1]) return false;
    if (this.ahead.size >= MAX_AHEAD_XIDS || aheadRanges(this.ahead) + spans.length > MAX_AHEAD_RANGES) return false;
    for (const [lo, hi] of spans) aheadAdd(this.ahead, xid, lo, hi);
    const readings = chunks.flat().map((packed) => toStreamReading([packed], this.cache));
    this.stats.fastRows += readings.length;
    this.emitBatch({ readings, cursor: this.settled(snap) });
    return true;
  }

  /**
   * Deliveries wait for `p` (a reload of grants after a change: a reading committed after a revoke must not
   * reach the partner through the grants of before): payloads meanwhile are left to the read, and the read
   * delivers once `p` has settled.
   */
  hold(p: Promise<unknown>): void {
    const gate = p.then(
      () => undefined,
      () => undefined,
    );
    this.gates.add(gate);
    void gate.then(() => this.gates.delete(gate));
  }

  private async gatesSettled(): Promise<void> {
    while (this.gates.size > 0) await Promise.all([...this.gates]);
  }

  /**
   * A read soon, not at once: after a payload went out there is nothing to deliver, only rows to confirm (and the
   * cursor to shorten), so reads after a burst of payloads coalesce into one, `confirmMs` later. At once when
   * the cursor is half full.
   */
  wakeSoon(): void {
    if (this.closed || this.soon) return;
    if (this.ahead.size >= MAX_AHEAD_XIDS / 2) return this.wake();
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.wake();
    }, this.opts.confirmMs ?? 0);
  }
  private soon: NodeJS.Timeout | undefined;

  /**
   * Payloads wait until a read covers `xid` (a transaction left to the read: what committed after it must not
   * overtake it). Remembered with the number of reads started so far: a read started after this that does not
   * see `xid` proves it was never a committed transaction (an unsigned NOTIFY), and drops it.
   */
  private block(xid: number): void {
    if (this.blockers.size >= MAX_BLOCKERS) {
      this.blockers.clear();
      this.holdFast();
    } else if (!this.blockers.has(xid)) this.blockers.set(xid, this.readStarts);
  }

  /** The settled cursor at `s`, with what was delivered ahead of it. */
  private settled(s: Snapshot): Cursor {
    const ahead = aheadOf(this.ahead, s);
    return ahead ? { kind: 'settled', s, ahead } : { kind: 'settled', s };
  }

  /** After a read up to `s`: forget what `s` covers; lift the barrier if this read started after it was set. */
  private settle(s: Snapshot, startNo: number): void {
    for (const xid of this.ahead.keys()) if (visibleIn(xid, s)) this.ahead.delete(xid);
    for (const [xid, mark] of this.blockers) if (visibleIn(xid, s) || startNo > mark) this.blockers.delete(xid);
    if (this.barrier !== undefined && startNo > this.barrier) this.barrier = undefined;
  }

  /** Rows a payload already delivered are not delivered again. */
  private notAhead(rows: readonly StreamRow[]): readonly StreamRow[] {
    if (this.ahead.size === 0) return rows;
    return rows.filter((r) => {
      const key = packedKey(r[0]);
      return !aheadHas(this.ahead, Number(keyXid(key)), Number(keyId(key)));
    });
  }

  /** Something may have committed: read soon (coalesced). */
  wake(): void {
    if (this.closed) return;
    this.dirty = true;
    if (!this.running) void this.loop();
  }

  /**
   * sync(), but at most `ms`: false when the feed did not get there in time (a large backlog, a hanging
   * database); the caller then reads the table itself instead of waiting on the feed. Errors reject as in sync().
   */
  async syncWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const synced = this.sync().then(() => true);
    synced.catch(() => undefined); // a failure after the timeout is nobody's to handle
    try {
      return await Promise.race([synced, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves once a read that started after this call has completed: read-your-writes for /latest and /rows.
   * While the database is failing, a caller does not wait out the retry back-off: the read is tried at once and
   * its failure rejects the caller, bounded by the pool's connect and query timeouts like any other request.
   */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.wake();
      this.cutBackoff?.();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.dirty && !this.closed) {
        this.dirty = false;
        const waiting = this.waiters;
        this.waiters = [];
        try {
          if (await this.readOnce()) {
            for (const w of waiting) w.resolve();
          } else {
            // That read only finished a backlog up to an older bound, without a snapshot (or change counter) taken
            // after these callers arrived: it proves nothing to them. Another read follows at once.
            this.waiters.unshift(...waiting);
            this.dirty = true;
          }
          this.retryMs = 0;
        } catch (err) {
          this.stats.errors++;
          const e = toSluiceError(err);
          for (const w of waiting) w.reject(e);
          this.log.warn({ err: (err as Error).message }, 'reading new readings failed; retrying');
          this.emit('error', e);
          // Back off (capped) and try again: the gap is covered by the next successful read.
          this.retryMs = Math.min(5000, Math.max(100, this.retryMs * 2));
          await new Promise<void>((r) => {
            const timer = setTimeout(r, this.retryMs * (0.5 + Math.random() / 2));
            this.cutBackoff = () => (clearTimeout(timer), r());
          });
          this.cutBackoff = undefined;
          this.dirty = true;
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** One read; true when it took a fresh snapshot (and change counter), false when it only finished a backlog. */
  private async readOnce(): Promise<boolean> {
    this.stats.polls++;
    if (this.paging) {
      await this.finishPaging(this.paging);
      return false;
    }
    const from = this.snapshot;
    const startNo = ++this.readStarts;
    const started = performance.now();
    const first = await readSince(this.pool, from, this.opts.pageRows, { prepared: this.opts.prepared === true, ahead: this.ahead, ...(this.opts.hotFrom ? { hotFrom: this.opts.hotFrom } : {}) });
    this.emit('read', (performance.now() - started) / 1000);
    const changesBefore = this.changes;
    if (first.changes !== changesBefore) {
      const [readingsBefore, grantsBefore] = this.changes.split('/');
      const [readingsNow, grantsNow] = first.changes.split('/');
      this.changes = first.changes;
      try {
        if (readingsNow !== readingsBefore) this.emit('change');
        if (grantsNow !== grantsBefore) this.emit('grants');
      } catch (err) {
        this.log.error({ err }, 'change consumer failed');
      }
    }
    // A grant change seen by this read (or notified meanwhile) is applied to the sessions before its rows go out.
    await this.gatesSettled();
    if (first.complete) {
      const rows = this.notAhead(first.rows);
      this.snap = first.snapshot;
      this.settle(first.snapshot, startNo);
      this.deliver(rows, this.settled(first.snapshot), first.snapshot);
      return true;
    }
    // A backlog larger than one page (e.g. after a database outage): page toward the fixed bound Q. Progress is
    // kept in `paging`, so a read that fails halfway resumes after the last delivered page, not from the start.
    const state = { from, q: first.snapshot, after: streamRowKey(first.rows.at(-1) as StreamRow), startNo };
    this.paging = state;
    this.deliver(this.notAhead(first.rows), this.pagingCursor(state));
    await this.finishPaging(state);
    return true;
  }

  private async finishPaging(state: PagingState): Promise<void> {
    for (;;) {
      const rows = await catchUpPage(this.pool, { since: state.from, upto: state.q, after: state.after, sluIds: null, limit: this.opts.pageRows, ...(this.opts.hotFrom ? { hotFrom: this.opts.hotFrom } : {}) });
      await this.gatesSettled();
      if (rows.length < this.opts.pageRows) {
        this.paging = undefined;
        const fresh = this.notAhead(rows);
        this.snap = state.q;
        this.settle(state.q, state.startNo);
        this.deliver(fresh, this.settled(state.q), state.q);
        return;
      }
      state.after = streamRowKey(rows.at(-1) as StreamRow);
      this.deliver(this.notAhead(rows), this.pagingCursor(state));
    }
  }

  private pagingCursor(state: PagingState): Cursor {
    const ahead = aheadOf(this.ahead, state.from);
    return { kind: 'paging', s: state.from, q: state.q, xid: state.after[0], id: state.after[1], ...(ahead ? { ahead } : {}) };
  }

  private deliver(rows: readonly StreamRow[], cursor: Cursor, snapshot?: Snapshot): void {
    const readings = rows.map((r) => toStreamReading(r, this.cache));
    this.stats.rows += readings.length;
    this.emitBatch(snapshot ? { readings, cursor, snapshot } : { readings, cursor });
  }

  private emitBatch(batch: Batch): void {
    try {
      this.emit('batch', batch);
    } catch (err) {
      // A consumer's bug is not a read failure: the position has advanced and re-reading would duplicate.
      this.log.error({ err }, 'batch consumer failed');
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.soon);
    this.noted = [];
    this.cutBackoff?.();
    const e = new Error('feed closed');
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
