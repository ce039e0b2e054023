// Regression test from the second outside review (an attacker's reproduction, kept so the finding stays fixed).
import { expect, it } from 'vitest';
import { BufferBudget, type Buffered } from '../../../src/ws/buffer-budget.ts';

// The gateway-wide cut in BufferBudget.sweep sorts ALL streams by their own backlog and cuts the largest, whatever
// partner holds how much: a partner with one moderately-behind stream (well within WS_MAX_BUFFER_BYTES and its own
// partner budget) is cut off, while partners spreading the same or more bytes over many small streams (each under
// the 256 KiB "behind" mark, so onSend never cuts them either) keep all of theirs.
const MiB = 1024 * 1024;
function stream(cn: string, bytes: number, cut: string[]): Buffered {
  let closed = false;
  return {
    partner: { cn },
    get isClosed() { return closed; },
    bufferedBytes: () => bytes,
    cutOff: () => { closed = true; cut.push(cn); },
  };
}

it('the global cut hits the partner using 4% of its budget, not the ones at their budget', () => {
  // Defaults: 64 MiB per partner, 1 GiB in all. 17 hog partners (or one operator's 17 CNs) each hold 63.75 MiB in
  // 255 streams of 250 KiB; a victim has one stream 3 MiB behind (a burst; below WS_MAX_BUFFER_BYTES = 4 MiB).
  const budget = new BufferBudget(64 * MiB, 1024 * MiB);
  const cut: string[] = [];
  const streams: Buffered[] = [];
  for (let h = 0; h < 17; h++) for (let i = 0; i < 255; i++) streams.push(stream(`hog${h}`, 250 * 1024, cut));
  streams.push(stream('victim', 3 * MiB, cut));
  budget.sweep(streams);
  console.log({ cut });
  expect(cut, 'streams cut off').not.toContain('victim');
});
