/** What the budget needs of a stream session. */
export interface Buffered {
  readonly partner: { readonly cn: string };
  readonly isClosed: boolean;
  /** Bytes written to the socket and not yet taken by the peer. */
  bufferedBytes(): number;
  cutOff(reason: string): void;
}

/** Below this a stream is not "behind": its frame is just on its way. */
const BEHIND_BYTES = 256 * 1024;

/**
 * Bounds the unsent bytes of all of one partner's streams, and of all streams, together. WS_MAX_BUFFER_BYTES
 * bounds one stream; without these a partner with 1,000 streams that never read would make the gateway hold
 * 1,000 x 4 MiB (an attack ran it out of memory). Two checks: `sweep` (every 250 ms) measures every stream and
 * cuts off the ones furthest behind until partner and gateway are under budget; between sweeps `onSend` keeps a
 * running estimate per partner and cuts off a stream that is behind when its partner's estimate is over budget,
 * so a burst of large frames cannot run far past the budget before the next sweep.
 */
export class BufferBudget {
  private readonly estimate = new Map<string, number>();

  constructor(
    readonly maxPartnerBytes: number,
    readonly maxTotalBytes: number,
  ) {}

  /** Called before a frame of `bytes` is written; false when the stream must be cut off instead. */
  onSend(s: Buffered, bytes: number): boolean {
    const est = (this.estimate.get(s.partner.cn) ?? 0) + bytes;
    this.estimate.set(s.partner.cn, est);
    return !(est > this.maxPartnerBytes && s.bufferedBytes() > BEHIND_BYTES);
  }

  /** Measures every stream, cuts off the furthest behind while over budget, and resets the estimates. */
  sweep(streams: Iterable<Buffered>): void {
    const byPartner = new Map<string, Array<[Buffered, number]>>();
    for (const s of streams) {
      const b = s.bufferedBytes();
      if (b === 0 || s.isClosed) continue;
      const e: [Buffered, number] = [s, b];
      const list = byPartner.get(s.partner.cn);
      if (list) list.push(e);
      else byPartner.set(s.partner.cn, [e]);
    }
    this.estimate.clear();
    for (const [cn, list] of byPartner) {
      const left = cut(list, this.maxPartnerBytes, `partner "${cn}"'s streams hold more than ${this.maxPartnerBytes} unread bytes`);
      this.estimate.set(cn, left);
    }
    // Over the gateway's budget, the partners holding the most give first (their streams furthest behind first):
    // a partner with one stream a little behind must not pay for others' thousands.
    const heaviest = [...byPartner.values()]
      .map((list) => ({ list: list.filter(([s]) => !s.isClosed), total: list.reduce((n, [s, b]) => n + (s.isClosed ? 0 : b), 0) }))
      .sort((x, y) => y.total - x.total);
    let sum = heaviest.reduce((n, p) => n + p.total, 0);
    for (const p of heaviest) {
      if (sum <= this.maxTotalBytes) break;
      const left = cut(p.list, Math.max(0, p.total - (sum - this.maxTotalBytes)), `this gateway's streams hold more than ${this.maxTotalBytes} unread bytes`);
      sum -= p.total - left;
    }
  }
}

/** Cuts off the streams furthest behind until the sum is within `budget`; returns what is left. */
function cut(list: Array<[Buffered, number]>, budget: number, why: string): number {
  let sum = list.reduce((n, [, b]) => n + b, 0);
  if (sum <= budget) return sum;
  for (const [s, b] of list.sort((x, y) => y[1] - x[1])) {
    if (sum <= budget) break;
    if (s.isClosed) continue;
    s.cutOff(`${why}; the furthest behind are cut off: reconnect with since=<your last cursor>`);
    sum -= b;
  }
  return sum;
}
