import type { Logger } from 'pino';
import type { StreamTransport } from '../stream/transport.ts';
import { BufferBudget } from './buffer-budget.ts';
import type { Session } from './session.ts';

/**
 * The two timers every stream server runs over its sessions: the heartbeat (ping, and drop a peer that did not
 * answer the previous one) and the buffer budgets. Both visit sessions in slices, never all in one tick.
 */
export function startSessionTimers(
  sessions: Map<StreamTransport, Session>,
  opts: { readonly heartbeatMs: number; readonly maxBufferBytes: number; readonly maxPartnerBufferBytes: number; readonly maxTotalBufferBytes: number },
  log: Logger,
): { readonly budget: BufferBudget; close(): void } {
  // Each session is pinged once per heartbeatMs, a slice of them every tick rather than all at once: 10,000
  // pings written in one tick hold up live delivery for tens of milliseconds.
  const heartbeatTicks = Math.max(1, Math.min(10, Math.floor(opts.heartbeatMs / 100)));
  let pingAt = sessions.entries();
  const heartbeat = setInterval(() => {
    for (let n = Math.ceil(sessions.size / heartbeatTicks); n > 0; n--) {
      let next = pingAt.next();
      if (next.done) {
        pingAt = sessions.entries(); // a Map iterator is live: sessions added since are visited, removed ones skipped
        next = pingAt.next();
        if (next.done) break;
      }
      const [ws, s] = next.value;
      const now = Date.now();
      if (now - s.pingedAt < opts.heartbeatMs) continue; // small sets are visited every tick; each acts once per interval
      if (!s.alive) {
        log.info({ partner: s.partner.cn }, 'stream peer did not answer ping; dropping');
        ws.terminate();
        continue;
      }
      s.alive = false;
      s.pingedAt = now;
      ws.ping();
    }
  }, opts.heartbeatMs / heartbeatTicks);
  heartbeat.unref();

  // WS_MAX_BUFFER_BYTES bounds one stream; the budget bounds them together, per partner and in all (see
  // BufferBudget). A stream over its own bound with nothing sent since is cut off here too, not at its next frame.
  const budget = new BufferBudget(opts.maxPartnerBufferBytes, opts.maxTotalBufferBytes);
  const budgets = setInterval(() => {
    for (const s of sessions.values()) {
      if (!s.isClosed && s.bufferedBytes() > opts.maxBufferBytes) s.cutOff(`more than ${opts.maxBufferBytes} bytes unread; reconnect with since=<your last cursor>`);
    }
    budget.sweep(sessions.values());
  }, 250);
  budgets.unref();

  return {
    budget,
    close() {
      clearInterval(heartbeat);
      clearInterval(budgets);
    },
  };
}
