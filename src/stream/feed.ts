import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from 'pino';
import { catchUpPage, currentPosition, readSince, streamRowKey, type HotFrom, type StreamRow } from '../db/since.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import { formatPacked, keyId, keyXid, latestJson, packedKey, readingT, type FormattedReading } from '../format/reading.ts';
import { toSluiceError } from '../errors.ts';
import type { Cursor } from './cursor.ts';
import type { Snapshot } from './snapshot.ts';

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
}

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
  private paging: { from: Snapshot; q: Snapshot; after: [number, number] } | undefined;
  private running = false;
  private dirty = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = 0;
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** Ends a retry back-off early: someone is waiting for an answer now (see sync). */
  private cutBackoff: (() => void) | undefined;
  /** Reads done and rows delivered, for metrics and tests. */
  readonly stats = { polls: 0, rows: 0, errors: 0 };

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
    this.timer = setInterval(() => this.wake(), this.opts.pollIntervalMs);
    this.timer.unref();
    return this.snap;
  }

  /** The snapshot up to which everything has been read and emitted. */
  get snapshot(): Snapshot {
    if (!this.snap) throw new Error('Feed.start() has not completed');
    return this.snap;
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
    const started = performance.now();
    const first = await readSince(this.pool, from, this.opts.pageRows, { prepared: this.opts.prepared === true, ...(this.opts.hotFrom ? { hotFrom: this.opts.hotFrom } : {}) });
    this.emit('read', (performance.now() - started) / 1000);
    if (first.changes !== this.changes) {
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
    if (first.complete) {
      this.snap = first.snapshot;
      this.deliver(first.rows, { kind: 'settled', s: first.snapshot }, first.snapshot);
      return true;
    }
    // A backlog larger than one page (e.g. after a database outage): page toward the fixed bound Q. Progress is
    // kept in `paging`, so a read that fails halfway resumes after the last delivered page, not from the start.
    const state = { from, q: first.snapshot, after: streamRowKey(first.rows.at(-1) as StreamRow) };
    this.paging = state;
    this.deliver(first.rows, { kind: 'paging', s: from, q: state.q, xid: state.after[0], id: state.after[1] });
    await this.finishPaging(state);
    return true;
  }

  private async finishPaging(state: { from: Snapshot; q: Snapshot; after: [number, number] }): Promise<void> {
    for (;;) {
      const rows = await catchUpPage(this.pool, { since: state.from, upto: state.q, after: state.after, sluIds: null, limit: this.opts.pageRows, ...(this.opts.hotFrom ? { hotFrom: this.opts.hotFrom } : {}) });
      if (rows.length < this.opts.pageRows) {
        this.paging = undefined;
        this.snap = state.q;
        this.deliver(rows, { kind: 'settled', s: state.q }, state.q);
        return;
      }
      state.after = streamRowKey(rows.at(-1) as StreamRow);
      this.deliver(rows, { kind: 'paging', s: state.from, q: state.q, xid: state.after[0], id: state.after[1] });
    }
  }

  private deliver(rows: readonly StreamRow[], cursor: Cursor, snapshot?: Snapshot): void {
    const readings = rows.map((r) => toStreamReading(r, this.cache));
    this.stats.rows += readings.length;
    try {
      this.emit('batch', snapshot ? { readings, cursor, snapshot } : { readings, cursor });
    } catch (err) {
      // A consumer's bug is not a read failure: the position has advanced and re-reading would duplicate.
      this.log.error({ err }, 'batch consumer failed');
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.cutBackoff?.();
    const e = new Error('feed closed');
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
