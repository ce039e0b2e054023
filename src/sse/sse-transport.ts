import type { ServerResponse } from 'node:http';
import type { StreamTransport } from '../stream/transport.ts';

const READINGS_PREFIX = '{"type":"readings","readings":';
const CURSOR_KEY = ',"cursor":"';

/**
 * A stream session over Server-Sent Events (GET BASE_PATH/events). The session's frames become SSE events:
 *  - readings: `id: <cursor>` + `event: readings` + `data: [R, …]` (R exactly the /latest object); the array is
 *    cut out of the pre-built frame, never parsed and built again;
 *  - subscribed / unsubscribed / error: `event: <type>` + `data: <the frame's JSON>` (with `id:` when it carries a
 *    cursor);
 *  - progress: an `id:` line alone (no event is dispatched, but EventSource's lastEventId and a client's
 *    Last-Event-ID move on);
 *  - a close: a last `event: error` naming the code, then the response ends.
 * A comment line (`: keep-alive`) is the heartbeat. The id is the cursor, so a reconnecting EventSource (or curl
 * with `Last-Event-ID:`) resumes with nothing lost or repeated.
 */
export class SseTransport implements StreamTransport {
  private ended = false;
  /** Called when a keep-alive was written: the SSE counterpart of a WebSocket pong. */
  onAlive: (() => void) | undefined;

  constructor(private readonly res: ServerResponse) {}

  get bufferedAmount(): number {
    return this.res.writableLength + (this.res.socket?.writableLength ?? 0);
  }

  send(text: string, cb?: (err?: Error) => void): void {
    if (this.ended) {
      cb?.(new Error('stream ended'));
      return;
    }
    this.res.write(toEvent(text), (err) => cb?.(err ?? undefined));
  }

  close(code: number, reason: string): void {
    if (this.ended) return;
    const colon = reason.indexOf(':');
    const error = { type: 'error', code: colon > 0 ? reason.slice(0, colon) : 'SLUICE_ERR_INTERNAL', close: code, message: colon > 0 ? reason.slice(colon + 1).trim() : reason };
    this.res.write(`event: error\ndata: ${JSON.stringify(error)}\n\n`);
    this.ended = true;
    this.res.end();
  }

  terminate(): void {
    this.ended = true;
    this.res.destroy();
  }

  ping(): void {
    if (!this.ended) this.res.write(': keep-alive\n\n', (err) => err || this.onAlive?.());
  }
}

/** One protocol frame (docs/stream.md) as SSE. */
export function toEvent(frame: string): string {
  if (frame.startsWith(READINGS_PREFIX)) {
    const at = frame.lastIndexOf(CURSOR_KEY);
    const cursor = frame.slice(at + CURSOR_KEY.length, -2);
    return `id: ${cursor}\nevent: readings\ndata: ${frame.slice(READINGS_PREFIX.length, at)}\n\n`;
  }
  const msg = JSON.parse(frame) as { type: string; cursor?: string };
  const id = typeof msg.cursor === 'string' ? `id: ${msg.cursor}\n` : '';
  if (msg.type === 'progress') return id ? `${id}\n` : '';
  return `${id}event: ${msg.type}\ndata: ${frame}\n\n`;
}
