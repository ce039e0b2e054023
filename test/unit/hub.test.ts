import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Hub, type Subscriber } from '../../src/hub/hub.ts';
import type { Batch, StreamReading } from '../../src/stream/feed.ts';

/** A live subscriber that records which SLUs' readings reached it. */
class Fake implements Subscriber {
  sluIds: Set<number> | null;
  readonly fast = true;
  got: number[] = [];
  constructor(ids: readonly number[] | null) {
    this.sluIds = ids === null ? null : new Set(ids);
  }
  sendFrame(frame: string): void {
    for (const r of (JSON.parse(frame) as { readings: Array<{ slu_id: number }> }).readings) this.got.push(r.slu_id);
  }
  onBatch(): void {
    throw new Error('a fast subscriber is served frames, not batches');
  }
  onIdle(): void {}
}

const SLUS = 12;
const ids = fc.array(fc.integer({ min: 0, max: SLUS - 1 }), { maxLength: 8 });

/** What a session does to its hub: the same calls Session makes, in any order. */
type Op =
  | { op: 'add' | 'remove'; who: number }
  | { op: 'subscribe' | 'unsubscribe'; who: number; ids: number[] }
  | { op: 'replace'; who: number; ids: number[] | null }
  | { op: 'publish' };
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('add' as const, 'remove' as const), who: fc.nat(4) }),
  fc.record({ op: fc.constantFrom('subscribe' as const, 'unsubscribe' as const), who: fc.nat(4), ids }),
  fc.record({ op: fc.constant('replace' as const), who: fc.nat(4), ids: fc.option(ids, { nil: null }) }),
  fc.constant({ op: 'publish' as const }),
);

function batchOf(sluIds: readonly number[]): Batch {
  const readings: StreamReading[] = sluIds.map((sluId, i) => ({ id: i, xid: 1, sluId, t: '', formatted: undefined as never, json: `{"slu_id":${sluId}}` }));
  return { readings, cursor: { kind: 'settled', s: { xmin: 1, xmax: 1, xip: [] } } };
}

describe('Hub index', () => {
  it('after any sequence of joins, subscription changes and leaves, delivers exactly what each member wants', () => {
    fc.assert(
      fc.property(fc.array(fc.option(ids, { nil: null }), { minLength: 5, maxLength: 5 }), fc.array(op, { maxLength: 60 }), (initial, ops) => {
        const hub = new Hub((err) => {
          throw err;
        });
        const subs = initial.map((i) => new Fake(i));
        const member = new Set<Fake>();
        const check = () => {
          // One reading of every SLU: each member gets exactly its SLUs (or all), non-members nothing.
          for (const s of subs) s.got = [];
          hub.publish(batchOf(Array.from({ length: SLUS }, (_, i) => i)));
          for (const s of subs) {
            const want = !member.has(s) ? [] : s.sluIds === null ? Array.from({ length: SLUS }, (_, i) => i) : [...s.sluIds].sort((a, b) => a - b);
            expect(s.got.sort((a, b) => a - b)).toEqual(want);
          }
          const union = new Set<number>();
          for (const s of member) for (const id of s.sluIds ?? []) union.add(id);
          expect(hub.indexedSlus).toBe(union.size);
          expect(hub.size).toBe(member.size);
        };
        for (const o of ops) {
          if (o.op === 'publish') {
            check();
            continue;
          }
          const s = subs[o.who] as Fake;
          if (o.op === 'add') {
            hub.add(s);
            member.add(s);
          } else if (o.op === 'remove') {
            hub.remove(s);
            member.delete(s);
          } else if (o.op === 'replace') {
            s.sluIds = o.ids === null ? null : new Set(o.ids);
            hub.reindex(s);
          } else if ((o.op === 'subscribe' || o.op === 'unsubscribe') && s.sluIds !== null) {
            // As Session.onMessage: only what actually changed is reported.
            const changed: number[] = [];
            for (const id of o.ids) {
              if (o.op === 'subscribe' ? !s.sluIds.has(id) : s.sluIds.has(id)) changed.push(id);
              if (o.op === 'subscribe') s.sluIds.add(id);
              else s.sluIds.delete(id);
            }
            if (o.op === 'subscribe') hub.changed(s, changed, []);
            else hub.changed(s, [], changed);
          }
        }
        check();
        for (const s of subs) hub.remove(s);
        member.clear();
        check();
        expect(hub.indexedSlus).toBe(0);
      }),
      { numRuns: 1500 },
    );
  });

  it('keeps the index exact when a set was changed in place and only reindex() is called', () => {
    const hub = new Hub();
    const s = new Fake([1, 2, 3]);
    hub.add(s);
    (s.sluIds as Set<number>).delete(2);
    (s.sluIds as Set<number>).add(4);
    hub.reindex(s);
    hub.publish(batchOf([1, 2, 3, 4]));
    expect(s.got).toEqual([1, 3, 4]);
    expect(hub.indexedSlus).toBe(3);
  });
});

/** A subscriber that can be slow (catching up: it gets whole batches) or fast (pre-built frames). */
class Toggle implements Subscriber {
  sluIds: Set<number> | null = null;
  fast = false;
  batches = 0;
  frames = 0;
  sendFrame(): void {
    this.frames++;
  }
  onBatch(): void {
    this.batches++;
  }
  onIdle(): void {}
}

describe('Hub slow members', () => {
  it('a batch reaches each member once, by its current path, and only slow members are walked for onBatch', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(5), fc.constantFrom('add', 'remove', 'fast', 'slow', 'publish')), { maxLength: 80 }), (ops) => {
        const hub = new Hub((err) => {
          throw err;
        });
        const subs = Array.from({ length: 6 }, () => new Toggle());
        const member = new Set<Toggle>();
        for (const [who, what] of ops) {
          const s = subs[who] as Toggle;
          if (what === 'add') (hub.add(s), member.add(s));
          else if (what === 'remove') (hub.remove(s), member.delete(s));
          else if (what === 'fast' || what === 'slow') ((s.fast = what === 'fast'), hub.fastChanged(s));
          else {
            const before = subs.map((x) => [x.batches, x.frames]);
            hub.publish(batchOf([1]));
            subs.forEach((x, i) => {
              const [b, f] = before[i] as [number, number];
              const want = member.has(x) ? (x.fast ? [b, f + 1] : [b + 1, f]) : [b, f];
              expect([x.batches, x.frames]).toEqual(want);
            });
          }
          expect(hub.slowCount).toBe([...member].filter((x) => !x.fast).length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
