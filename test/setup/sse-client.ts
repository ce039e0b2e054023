import https from 'node:https';
import type { CertAndKey } from '../../src/tls/certificates.ts';

/** One Server-Sent Event as a client sees it. */
export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

/**
 * A minimal EventSource over mutual TLS (Node has none that presents a client certificate): records every event,
 * the last id (as EventSource's lastEventId, which id-only events move too) and comments.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  lastEventId: string | undefined;
  status = 0;
  body = '';
  ended = false;
  private req!: ReturnType<typeof https.request>;
  private buffer = '';
  readonly opened: Promise<void>;

  constructor(port: number, opts: { ca: string; client: CertAndKey; query?: string; lastEventId?: string }) {
    this.opened = new Promise((resolve, reject) => {
      this.req = https.request(
        {
          host: '127.0.0.1', servername: 'localhost', port, method: 'GET', path: `/cityxchange/events${opts.query ? `?${opts.query}` : ''}`,
          ca: opts.ca, cert: opts.client.certPem, key: opts.client.keyPem, agent: false,
          headers: { accept: 'text/event-stream', ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}) },
        },
        (res) => {
          this.status = res.statusCode ?? 0;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (this.status !== 200) this.body += chunk;
            else this.parse(chunk);
          });
          res.on('end', () => (this.ended = true));
          res.on('close', () => (this.ended = true));
          resolve();
        },
      );
      this.req.on('error', (err) => (this.ended = true, reject(err)));
      this.req.end();
    });
    this.opened.catch(() => undefined);
  }

  private parse(chunk: string): void {
    this.buffer += chunk;
    for (let end = this.buffer.indexOf('\n\n'); end >= 0; end = this.buffer.indexOf('\n\n')) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let event = 'message';
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (id !== undefined) this.lastEventId = id;
      if (data.length > 0) this.events.push({ event, id, data: data.join('\n') });
    }
  }

  /** Readings received, parsed. */
  readings(): Array<{ slu_id: number; v1: number; [k: string]: unknown }> {
    return this.events.filter((e) => e.event === 'readings').flatMap((e) => JSON.parse(e.data) as Array<{ slu_id: number; v1: number }>);
  }

  async until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (events: ${JSON.stringify(this.events.slice(-3)).slice(0, 500)}, ended ${this.ended})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.req.destroy();
  }
}
