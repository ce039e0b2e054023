import { EventEmitter } from 'node:events';
import WebSocket from 'ws';

/** A reading exactly as the stream (and /latest) sends it: p/k/a as strings in the legacy float format. */
export interface Reading {
  readonly slu_id: number;
  readonly t: string;
  readonly p1: string; readonly p2: string; readonly p3: string;
  readonly k1: string; readonly k2: string; readonly k3: string;
  readonly a1: string; readonly a2: string; readonly a3: string;
  readonly v1: number | null; readonly v2: number | null; readonly v3: number | null;
}

/** The same reading with p/k/a parsed to numbers (null stays null) and t as a Date (UTC). */
export interface NumericReading {
  readonly slu_id: number;
  readonly t: Date;
  readonly p1: number | null; readonly p2: number | null; readonly p3: number | null;
  readonly k1: number | null; readonly k2: number | null; readonly k3: number | null;
  readonly a1: number | null; readonly a2: number | null; readonly a3: number | null;
  readonly v1: number | null; readonly v2: number | null; readonly v3: number | null;
}

export interface SluiceClientOptions {
  /** e.g. wss://gateway.example:8443/cityxchange/stream (or https://…/cityxchange; /stream is added). */
  readonly url: string;
  /** Client certificate, key and the CA that signed the gateway's certificate (PEM text or Buffers). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly ca: string | Buffer;
  /** SLUs to follow; omitted or empty: all SLUs the partner is granted. */
  readonly sluIds?: readonly number[];
  /** Start after this cursor (e.g. one saved by the previous run); omitted: from now. */
  readonly since?: string;
  /** First reconnect delay and cap, ms (exponential, with jitter). Defaults 250 and 15000. */
  readonly retryBaseMs?: number;
  readonly retryCapMs?: number;
  /** TLS server name to verify (default: the URL's host). */
  readonly servername?: string;
}

/** Close codes after which reconnecting cannot help (docs/stream.md): the caller must act. */
const FATAL_CLOSE = new Set([1003, 4400, 4401, 4403, 4410]);

export class SluiceStreamError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly closeCode?: number,
  ) {
    super(message);
    this.name = 'SluiceStreamError';
  }
}

type Item = { reading: Reading; cursor: string };

/**
 * A live stream of readings that cannot miss any: it remembers the cursor of every frame, and after any
 * disconnect (network, gateway restart, 4408 slow consumer, 1012 going away) reconnects with jittered backoff
 * and `since=<cursor>`, so the caller sees every reading exactly once, in commit order per SLU.
 *
 *   const c = new SluiceClient({ url, cert, key, ca, sluIds: [1, 2] });
 *   for await (const r of c.readings()) console.log(r.slu_id, r.t, r.v1);
 *
 * `cursor` is the position after the last reading handed out: persist it to resume across runs.
 */
export class SluiceClient extends EventEmitter<{
  connected: [{ resumed: boolean }];
  disconnected: [{ code: number; reason: string; retryInMs: number }];
  error: [Error];
}> {
  /** The position after the last reading the caller has taken (or the last frame, when nothing was pending). */
  cursor: string | undefined;
  /** Reconnects so far. */
  reconnects = 0;
  private ws: WebSocket | undefined;
  private readonly queue: Item[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  private failure: Error | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly url: string;

  constructor(private readonly opts: SluiceClientOptions) {
    super();
    const u = new URL(opts.url);
    if (u.protocol === 'https:') u.protocol = 'wss:';
    if (u.protocol !== 'wss:') throw new TypeError(`url must be wss:// or https://, got ${opts.url}`);
    if (!u.pathname.endsWith('/stream')) u.pathname = u.pathname.replace(/\/$/, '') + '/stream';
    u.search = '';
    this.url = u.toString();
    this.cursor = opts.since;
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const q = new URLSearchParams();
    if (this.opts.sluIds?.length) q.set('slu_id', this.opts.sluIds.join(','));
    if (this.cursor) q.set('since', this.cursor);
    const resumed = this.cursor !== undefined;
    // ws hands TLS options to tls.connect; its types do not list them all. An IP host is checked against the
    // certificate's IP SANs (servername must be a name); a hostname is sent as SNI and checked as usual.
    const tlsOptions = {
      cert: this.opts.cert, key: this.opts.key, ca: this.opts.ca, perMessageDeflate: false, handshakeTimeout: 10_000,
      ...(this.opts.servername ? { servername: this.opts.servername } : {}),
    };
    const ws = new WebSocket(`${this.url}${q.size ? `?${q}` : ''}`, tlsOptions as WebSocket.ClientOptions);
    this.ws = ws;
    let refusedStatus: number | undefined;
    let joined = false;
    ws.on('unexpected-response', (_req, res) => {
      refusedStatus = res.statusCode;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        let code = `HTTP_${res.statusCode}`;
        let message = body;
        try {
          const j = JSON.parse(body) as { code?: string; message?: string };
          code = j.code ?? code;
          message = j.message ?? body;
        } catch { /* not JSON */ }
        // 401/403: this certificate will not get in by retrying; 429/503: retry later.
        if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 404) this.fail(new SluiceStreamError(code, message));
        else this.scheduleReconnect(res.statusCode ?? 0, message);
      });
    });
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as { type: string; cursor?: string; readings?: Reading[]; code?: string; message?: string };
      // The first subscribed frame of a connection is the join; later ones answer subscription changes.
      if (f.type === 'subscribed' && !joined) {
        joined = true;
        this.attempt = 0;
        this.emit('connected', { resumed });
      }
      if (f.type === 'readings' && f.readings && f.cursor) {
        for (const reading of f.readings) this.queue.push({ reading, cursor: f.cursor });
        this.wake();
      } else if (f.cursor && this.queue.length === 0) this.cursor = f.cursor;
      if (f.type === 'error') this.emit('error', new SluiceStreamError(f.code ?? 'SLUICE_ERR', f.message ?? 'error frame'));
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws || refusedStatus !== undefined) return;
      const text = reason.toString();
      if (this.closed) return;
      if (FATAL_CLOSE.has(code)) return this.fail(new SluiceStreamError(text.split(':')[0] || `CLOSE_${code}`, text || `closed with ${code}`, code));
      this.scheduleReconnect(code, text);
    });
    ws.on('error', () => undefined); // followed by 'close'
  }

  private scheduleReconnect(code: number, reason: string): void {
    if (this.closed || this.timer) return;
    const base = this.opts.retryBaseMs ?? 250;
    const cap = this.opts.retryCapMs ?? 15_000;
    const exp = Math.min(cap, base * 2 ** this.attempt++);
    const retryInMs = Math.round(exp / 2 + Math.random() * (exp / 2));
    this.emit('disconnected', { code, reason, retryInMs });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconnects++;
      this.connect();
    }, retryInMs);
  }

  private fail(err: Error): void {
    this.failure = err;
    this.close();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Every reading, exactly once, until close(); throws when the gateway refuses for good (revoked, no grants…). */
  async *readings(): AsyncGenerator<Reading> {
    for (;;) {
      const item = this.queue.shift();
      if (item) {
        // The cursor moves only once the caller has the reading: a crash before that replays it on resume.
        if (this.queue.length === 0 || this.queue[0]?.cursor !== item.cursor) this.cursor = item.cursor;
        yield item.reading;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.closed) return;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** As readings(), with numbers parsed from the legacy strings and t as a Date. */
  async *numericReadings(): AsyncGenerator<NumericReading> {
    for await (const r of this.readings()) yield toNumeric(r);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.wake();
  }
}

const num = (s: string | null | undefined) => (s === null || s === undefined ? null : Number(s));

/** p/k/a strings to numbers as printed (9 significant digits: Math.fround() of one gives the stored float4 exactly), t to a UTC Date (microseconds dropped). */
export function toNumeric(r: Reading): NumericReading {
  return {
    slu_id: r.slu_id, t: new Date(r.t.replace(' ', 'T') + 'Z'),
    p1: num(r.p1), p2: num(r.p2), p3: num(r.p3), k1: num(r.k1), k2: num(r.k2), k3: num(r.k3),
    a1: num(r.a1), a2: num(r.a2), a3: num(r.a3), v1: r.v1, v2: r.v2, v3: r.v3,
  };
}
