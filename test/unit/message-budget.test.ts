import { describe, expect, it } from 'vitest';
import { MessageBudget } from '../../src/ws/message-budget.ts';

describe('MessageBudget', () => {
  it('allows a burst, then perSecond, and refuses the rest with a strike each', () => {
    const b = new MessageBudget(20, 40, 0);
    const first = Array.from({ length: 50 }, () => b.take(0));
    expect(first.filter(Boolean)).toHaveLength(40);
    expect(b.strikes).toBe(10);
    // Half a second later: 10 more messages.
    const next = Array.from({ length: 15 }, () => b.take(500));
    expect(next.filter(Boolean)).toHaveLength(10);
    expect(b.strikes).toBe(15);
  });

  it('keeps the strikes of a client that never slows down, forgives one that paused until its bucket refilled', () => {
    const b = new MessageBudget(20, 40, 0);
    let t = 0;
    // 40 messages/s, twice the budget, for 5 s: about one refusal in two, strikes only grow.
    for (let i = 0; i < 200; i++) b.take((t += 25));
    expect(b.strikes).toBeGreaterThan(50);
    // A 2 s pause refills the 40 messages: the slate is clean.
    expect(b.take((t += 2000))).toBe(true);
    expect(b.strikes).toBe(0);
  });

  it('never refuses with perSecond 0 (no limit)', () => {
    const b = new MessageBudget(0, 1, 0);
    for (let i = 0; i < 1000; i++) expect(b.take(0)).toBe(true);
    expect(b.strikes).toBe(0);
  });

  it('throws a TypeError that says what to change for an impossible budget', () => {
    expect(() => new MessageBudget(20, 0)).toThrow(/burst >= 1/);
    expect(() => new MessageBudget(-1, 5)).toThrow(/perSecond >= 0/);
  });
});
