import type { ErrorCode } from '../errors.ts';

type Refusal = Extract<ErrorCode, 'SLUICE_ERR_REPLAY_LIMIT' | 'SLUICE_ERR_REPLAYS_BUSY'>;

interface Waiter {
  readonly partner: string;
  readonly resolve: (r: 'ok' | Refusal | 'aborted') => void;
}

/**
 * Counts the replays (resumes with since=) running now, in all and per partner, so that no partner can make
 * the gateway replay without bound: a replay reads the table page by page for as long as its client reads, and
 * many at once would take the database from everyone else. A resume that finds no free slot waits for one, in
 * arrival order, but at most `waitMs` (then it is refused with the limit that held it, and the client retries
 * with the same cursor); after a gateway dies all its clients resume at once on the others, and queueing them
 * briefly beats refusing most of them. Waiting costs no database work: the socket is already counted against
 * the connection caps, and a waiter whose client goes away leaves the queue.
 */
export class ReplaySlots {
  private total = 0;
  private readonly perPartner = new Map<string, number>();
  private readonly queue: Waiter[] = [];

  constructor(
    /** Replays running at once in this gateway (also the size of the replay connection pool). */
    readonly max: number,
    /** Replays one partner (certificate CN) may run at once. */
    readonly maxPerPartner: number,
    /** Longest a resume waits for a slot, ms. */
    readonly waitMs: number,
  ) {}

  /** Takes a slot (waiting for one), or says which limit refused it. Call `release` exactly once for every 'ok'. */
  acquire(partner: string, signal: AbortSignal): Promise<'ok' | Refusal | 'aborted'> {
    if (signal.aborted) return Promise.resolve('aborted');
    // Waiters are served as soon as they fit (release), so any still queued are held by their own partner's limit:
    // they must not hold up a resume that fits now.
    if (this.fits(partner)) return Promise.resolve(this.take(partner));
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(this.blockedBy(partner)), this.waitMs);
      const onAbort = () => settle('aborted');
      const settle = (r: 'ok' | Refusal | 'aborted') => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const at = this.queue.indexOf(waiter);
        if (at >= 0) this.queue.splice(at, 1);
        resolve(r);
      };
      const waiter: Waiter = { partner, resolve: settle };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  release(partner: string): void {
    this.total--;
    const n = (this.perPartner.get(partner) ?? 1) - 1;
    if (n <= 0) this.perPartner.delete(partner);
    else this.perPartner.set(partner, n);
    // The first waiter that fits: a partner at its own limit does not hold up the others.
    const next = this.queue.find((w) => this.fits(w.partner));
    if (next) {
      this.take(next.partner);
      next.resolve('ok');
    }
  }

  /** Replays running now. */
  get running(): number {
    return this.total;
  }

  /** Resumes waiting for a slot now. */
  get waiting(): number {
    return this.queue.length;
  }

  private fits(partner: string): boolean {
    return this.total < this.max && (this.perPartner.get(partner) ?? 0) < this.maxPerPartner;
  }

  private blockedBy(partner: string): Refusal {
    return (this.perPartner.get(partner) ?? 0) >= this.maxPerPartner ? 'SLUICE_ERR_REPLAY_LIMIT' : 'SLUICE_ERR_REPLAYS_BUSY';
  }

  private take(partner: string): 'ok' {
    this.total++;
    this.perPartner.set(partner, (this.perPartner.get(partner) ?? 0) + 1);
    return 'ok';
  }
}
