/**
 * One connection's budget of client messages: a token bucket holding at most `burst` messages, refilled at
 * `perSecond`. A message over budget is a strike; strikes are forgiven once the bucket is full again (the client
 * paused long enough), so a client that is only sometimes bursty is never closed, while one that keeps sending
 * faster than its budget collects strikes until it is.
 */
export class MessageBudget {
  private tokens: number;
  private last: number;
  /** Messages refused since the bucket was last full. */
  strikes = 0;

  /** @param perSecond refill rate, messages/s; 0 = no limit. @param burst bucket size, messages. */
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number = performance.now(),
  ) {
    if (!(perSecond >= 0) || !(burst >= 1)) throw new TypeError(`a message budget needs perSecond >= 0 and burst >= 1, got ${perSecond} and ${burst}`);
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one message from the budget; false (and one more strike) when there is none left. */
  take(now: number = performance.now()): boolean {
    if (this.perSecond === 0) return true;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= this.burst) this.strikes = 0;
    if (this.tokens < 1) {
      this.strikes++;
      return false;
    }
    this.tokens -= 1;
    return true;
  }
}
