import WebSocket from 'ws';
import type { CertAndKey } from '../../src/tls/certificates.ts';

/** A parsed server frame. */
export type Frame = { type: string; [k: string]: unknown };

export interface StreamReadingJson {
  slu_id: number;
  v1: number;
  t: string;
  [k: string]: unknown;
}

/**
 * A real WebSocket client over mutual TLS that records every frame, for asserting on data: `readings` is
 * everything received in order, `cursor` the last cursor seen.
 */
export class StreamClient {
  readonly frames: Frame[] = [];
  readonly readings: StreamReadingJson[] = [];
  cursor: string | undefined;
  /**
   * The subscription as a client rebuilds it from subscribed/unsubscribed frames (docs/stream.md): `slu_ids`
   * is the whole of it ("all" or a list), `added` / `removed` what one message changed.
   */
  subscription: Set<number> | 'all' | undefined;
  closeCode: number | undefined;
  closeReason = '';
  private waiters: Array<() => void> = [];
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(port: number, opts: { ca: string; client?: CertAndKey; query?: string; path?: string }) {
    const path = opts.path ?? '/cityxchange/stream';
    // ws passes TLS options through to tls.connect (servername included), its types just do not list them all.
    const tlsOptions = { ca: opts.ca, servername: 'localhost', ...(opts.client ? { cert: opts.client.certPem, key: opts.client.keyPem } : {}) };
    this.ws = new WebSocket(`wss://127.0.0.1:${port}${path}${opts.query ? `?${opts.query}` : ''}`, tlsOptions as WebSocket.ClientOptions);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => this.ws.once('close', () => resolve()));
    this.ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      this.frames.push(f);
      if (typeof f.cursor === 'string') this.cursor = f.cursor;
      if (f.type === 'readings') for (const r of f.readings as StreamReadingJson[]) this.readings.push(r);
      if (f.type === 'subscribed' || f.type === 'unsubscribed') this.track(f);
      this.notify();
    });
    this.ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.notify();
    });
    this.ws.on('error', () => undefined);
  }

  private track(f: Frame): void {
    if (f.slu_ids === 'all') this.subscription = 'all';
    else if (Array.isArray(f.slu_ids)) this.subscription = new Set(f.slu_ids as number[]);
    else if (this.subscription instanceof Set) {
      for (const id of (f.added as number[] | undefined) ?? []) this.subscription.add(id);
      for (const id of (f.removed as number[] | undefined) ?? []) this.subscription.delete(id);
    }
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `pred` holds (checked on every frame and on close). */
  async until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (have ${this.readings.length} readings, frames: ${JSON.stringify(this.frames.slice(-3)).slice(0, 600)}, close ${this.closeCode})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next frame of a type, after the frames already seen. */
  async next(type: string, from = this.frames.length): Promise<Frame> {
    await this.until(() => this.frames.slice(from).some((f) => f.type === type), `a ${type} frame`);
    return this.frames.slice(from).find((f) => f.type === type) as Frame;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    this.ws.terminate();
  }
}

/** Keys of the stream's reading objects: exactly the /latest shape. */
export const LATEST_KEYS = ['p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3', 't', 'slu_id', 'v1', 'v2', 'v3'];
