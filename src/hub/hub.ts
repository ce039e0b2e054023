import { encodeCursor } from '../stream/cursor.ts';
import type { Batch, StreamReading } from '../stream/feed.ts';
import { readingsFrame } from '../ws/protocol.ts';

/** What the hub needs of a connected client (implemented by ws/session.ts). */
export interface Subscriber {
  /** Subscribed SLUs, or null for all. */
  readonly sluIds: ReadonlySet<number> | null;
  /**
   * True while the client is live with nothing to reconcile: it takes pre-built frames. A subscriber tells the
   * hub when this changes (Hub.fastChanged), so a batch never has to look at every member to find the slow ones.
   */
  readonly fast: boolean;
  /** Sends a ready frame (checks backpressure). */
  sendFrame(frame: string, cursorText: string): void;
  /** Slow path (catching up, or live behind a floor): the client filters the batch itself. */
  onBatch(batch: Batch, cursorText: string): void;
  /** The feed advanced without data for this client. */
  onIdle(cursorText: string): void;
  /** Readings were updated, deleted or truncated: whatever the subscriber holds back may be stale now. */
  onTableChange?(): void;
}

/**
 * Fan-out of feed batches to subscribers by slu_id. Each reading was serialised once by the feed; the hub only
 * joins the pieces each client gets into one frame per client per batch, and builds the "all SLUs" frame once
 * for every all-subscriber. Subscribers of other SLUs are never touched: a batch costs the readings times their
 * subscribers (plus the few clients catching up), however many idle clients are connected.
 */
export class Hub {
  /** @param onSubscriberError called when one subscriber's handler throws; the others are unaffected. */
  constructor(private readonly onSubscriberError: (err: unknown) => void = () => undefined) {}

  private readonly bySlu = new Map<number, Set<Subscriber>>();
  private readonly all = new Set<Subscriber>();
  /**
   * Every subscriber, with the set it was indexed under (the subscriber's own object, not a copy): what a remove
   * or a replacement has to take out again, so neither walks the whole index.
   */
  private readonly members = new Map<Subscriber, ReadonlySet<number> | null>();
  /** Members that are not `fast` (catching up, or live behind a floor): they see every batch themselves. */
  private readonly slow = new Set<Subscriber>();
  private cursorText = '';
  /** Counters for metrics and tests. */
  readonly stats = { batches: 0, framesSent: 0, readingsOut: 0, readingsIn: 0 };

  /** The cursor of the last batch: where a client connecting now starts. */
  get currentCursor(): string {
    return this.cursorText;
  }

  setInitialCursor(text: string): void {
    this.cursorText = text;
  }

  get size(): number {
    return this.members.size;
  }

  /** SLUs at least one subscriber asked for by id (subscribers of "all" are not counted). */
  get indexedSlus(): number {
    return this.bySlu.size;
  }

  /** Members catching up or behind a floor (tests: the set must empty once everyone is live). */
  get slowCount(): number {
    return this.slow.size;
  }

  add(s: Subscriber): void {
    if (this.members.has(s)) return this.reindex(s);
    this.members.set(s, s.sluIds);
    this.index(s, s.sluIds);
    this.fastChanged(s);
  }

  /** s.fast may have changed: keeps the set of slow members exact. */
  fastChanged(s: Subscriber): void {
    if (s.fast || !this.members.has(s)) this.slow.delete(s);
    else this.slow.add(s);
  }

  /**
   * s.sluIds is the set it was indexed under and gained `added` and lost `removed` in place: costs the size of
   * the change, not of the subscription (a subscribe message of a client of 10,000 SLUs walked them all).
   */
  changed(s: Subscriber, added: Iterable<number>, removed: Iterable<number>): void {
    if (!this.members.has(s)) return;
    if (this.members.get(s) !== s.sluIds || s.sluIds === null) return this.reindex(s);
    this.index(s, added);
    this.unindex(s, removed);
  }

  /**
   * s.sluIds was replaced (a new set, or null for all): takes s out under the set it was indexed with and in
   * under the new one, walking those two sets only.
   */
  reindex(s: Subscriber): void {
    if (!this.members.has(s)) return;
    const before = this.members.get(s) as ReadonlySet<number> | null;
    if (before !== null && before === s.sluIds) {
      // Changed in place without saying how (changed() is the way): only a walk of the whole index finds what
      // it lost. Nothing in the gateway takes this path; it keeps the index exact if something ever does.
      for (const [id, set] of this.bySlu) if (!before.has(id) && set.delete(s) && set.size === 0) this.bySlu.delete(id);
      this.index(s, before);
      return;
    }
    this.unindex(s, before);
    this.members.set(s, s.sluIds);
    this.index(s, s.sluIds);
  }

  remove(s: Subscriber): void {
    if (!this.members.has(s)) return;
    const before = this.members.get(s) as ReadonlySet<number> | null;
    this.members.delete(s);
    this.slow.delete(s);
    this.unindex(s, before);
  }

  private index(s: Subscriber, ids: Iterable<number> | null): void {
    if (ids === null) {
      this.all.add(s);
      return;
    }
    for (const id of ids) {
      let set = this.bySlu.get(id);
      if (!set) this.bySlu.set(id, (set = new Set()));
      set.add(s);
    }
  }

  private unindex(s: Subscriber, ids: Iterable<number> | null): void {
    if (ids === null) {
      this.all.delete(s);
      return;
    }
    for (const id of ids) {
      const set = this.bySlu.get(id);
      if (set?.delete(s) && set.size === 0) this.bySlu.delete(id);
    }
  }

  publish(batch: Batch): void {
    this.stats.batches++;
    this.stats.readingsIn += batch.readings.length;
    const cursorText = encodeCursor(batch.cursor);
    this.cursorText = cursorText;
    // Decide each subscriber's path once per batch: a slow one may turn fast while handling this very batch,
    // and must not then get it a second time from the fast path.
    const touched = new Set<Subscriber>(this.slow);
    for (const s of touched) this.guard(() => s.onBatch(batch, cursorText));
    if (batch.readings.length > 0) {
      const per = new Map<Subscriber, string[]>();
      for (const r of batch.readings) {
        const subs = this.bySlu.get(r.sluId);
        if (!subs) continue;
        for (const s of subs) {
          if (touched.has(s) || !s.fast) continue;
          const list = per.get(s);
          if (list) list.push(r.json);
          else per.set(s, [r.json]);
        }
      }
      for (const [s, list] of per) {
        this.guard(() => s.sendFrame(readingsFrame(list, cursorText), cursorText));
        touched.add(s);
        this.stats.framesSent++;
        this.stats.readingsOut += list.length;
      }
      if (this.all.size > 0) {
        const frame = readingsFrame(batch.readings.map((r: StreamReading) => r.json), cursorText);
        for (const s of this.all) {
          if (touched.has(s) || !s.fast) continue;
          this.guard(() => s.sendFrame(frame, cursorText));
          touched.add(s);
          this.stats.framesSent++;
          this.stats.readingsOut += batch.readings.length;
        }
      }
    }
  }

  /**
   * Readings changed other than by insert (the feed saw sql/006's counter move). Only slow members hold readings
   * back (buffered during a replay), so only they are told.
   */
  tableChanged(): void {
    for (const s of [...this.slow]) this.guard(() => s.onTableChange?.());
  }

  /**
   * Offers subscribers the current cursor (idle ones send a progress frame when theirs is stale): `fraction` of
   * the members per call, continuing where the last call stopped, so a timer calling it every T ms visits each
   * member once per T / fraction ms. Spread out, not all at once: at 10,000 idle clients one sweep of everyone
   * wrote 10,000 progress frames in one tick and stalled live delivery for ~80 ms (bench:stream's idle phase).
   * Run on a timer, never per batch: per batch it would cost O(subscribers) per database read.
   */
  sweepIdle(fraction = 1): void {
    let n = Math.ceil(this.members.size * Math.min(1, fraction));
    while (n-- > 0) {
      let next = this.sweepAt.next();
      if (next.done) {
        this.sweepAt = this.members.keys(); // a Map iterator is live: members added since are visited, removed ones skipped
        next = this.sweepAt.next();
        if (next.done) return;
      }
      const s = next.value;
      this.guard(() => s.onIdle(this.cursorText));
    }
  }
  private sweepAt: Iterator<Subscriber> = this.members.keys();

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onSubscriberError(err);
    }
  }

  /** Every subscriber, e.g. to close them all on shutdown. */
  subscribers(): IterableIterator<Subscriber> {
    return this.members.keys();
  }
}
