import type { SecureContextOptions } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import type { Server } from 'node:https';
import type { Logger } from 'pino';
import { TlsMaterial, type TlsFiles } from './tls-material.ts';

const DAY_MS = 86_400_000;

interface ReloaderOptions {
  readonly watch: boolean;
  readonly warnDays: number;
  readonly onReload?: (m: TlsMaterial) => void;
  /**
   * The secure-context options the server was built with, for new material (tlsServerOptions): without them a
   * reload would drop settings such as SSL_OP_NO_TICKET, and sessions would become resumable after every reload.
   */
  readonly contextOptions?: (m: TlsMaterial) => SecureContextOptions;
}

/**
 * Keeps the server's TLS material current without a restart: on reload() (SIGHUP) and, with `watch`, when a
 * file changes. Connected clients stay connected (setSecureContext applies to new handshakes); session ticket
 * keys are rotated so no TLS session from before the reload can be resumed; `onReload` lets the gateway close
 * live streams of certificates that were just revoked. A reload whose files fail the checks of
 * TlsMaterial.load (a half-written file, a key that does not match, a CRL from another CA or out of date) keeps
 * the previous material, logs why, and leaves the gateway `degraded` until a reload succeeds.
 */
export class TlsReloader {
  current: TlsMaterial;
  private server: Server | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly daily: NodeJS.Timeout;
  private readonly watched: string[] = [];
  /** Why the last reload was refused; undefined after a good one. */
  private failure: string | undefined;
  /** Reloads run one at a time, in the order asked, so an older read of the files never replaces a newer one. */
  private queue: Promise<unknown> = Promise.resolve();

  /** Loads and checks the files; rejects with a message naming the file and setting (start-up stops there). */
  static async start(files: TlsFiles, log: Logger, opts: ReloaderOptions): Promise<TlsReloader> {
    return new TlsReloader(files, log, opts, await TlsMaterial.load(files));
  }

  private constructor(
    private readonly files: TlsFiles,
    private readonly log: Logger,
    private readonly opts: ReloaderOptions,
    material: TlsMaterial,
  ) {
    this.current = material;
    this.warnExpiry();
    this.daily = setInterval(() => this.warnExpiry(), DAY_MS);
    this.daily.unref();
  }

  /**
   * Why the server may be failing handshakes or serving stale material, or undefined when all is well: the last
   * reload was refused (the previous material still serves), or the CRL in use is past its nextUpdate.
   */
  get degraded(): string | undefined {
    if (this.failure) return this.failure;
    const next = this.current.crlNextUpdate;
    if (next && next.getTime() < Date.now()) return `the CRL in use is past its nextUpdate ${next.toISOString()}: handshakes fail until a fresh one is loaded`;
    return undefined;
  }

  /** Starts applying reloads to `server` (and watching the files, if asked). */
  attach(server: Server): void {
    this.server = server;
    if (!this.opts.watch) return;
    for (const f of [this.files.ca, this.files.cert, this.files.key, this.files.crl, this.files.denylist]) {
      if (!f || this.watched.includes(f)) continue;
      this.watched.push(f);
      // Polling stat, not fs.watch: certificate tools replace files by rename, which inode watches miss.
      watchFile(f, { interval: 1000, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.reload(`${f} changed`), 300); // several files are often rewritten together
      });
    }
  }

  /** Re-reads every file and applies them; false (and the old material kept) when they are unusable. */
  reload(reason: string): Promise<boolean> {
    const run = this.queue.then(() => this.apply(reason));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(reason: string): Promise<boolean> {
    let next: TlsMaterial;
    try {
      next = await TlsMaterial.load(this.files);
    } catch (err) {
      return this.refuse(reason, (err as Error).message);
    }
    if (this.server) {
      try {
        this.server.setSecureContext(this.opts.contextOptions?.(next) ?? next.options);
      } catch (err) {
        return this.refuse(reason, (err as Error).message);
      }
      this.server.setTicketKeys(randomBytes(48));
    }
    this.current = next;
    if (this.failure) this.log.info({ reason, was: this.failure }, 'TLS no longer degraded');
    this.failure = undefined;
    this.log.info({ reason, denied: next.revokedCount, serverNotAfter: next.serverNotAfter.toISOString() }, 'TLS material reloaded');
    this.warnExpiry();
    this.opts.onReload?.(next);
    return true;
  }

  private refuse(reason: string, err: string): false {
    this.failure = `TLS reload refused (${reason}): ${err}; the previous certificates, key and CRL still serve`;
    this.log.error({ reason, err }, 'TLS reload failed; keeping the previous certificates');
    return false;
  }

  private warnExpiry(): void {
    const days = (this.current.serverNotAfter.getTime() - Date.now()) / DAY_MS;
    if (days <= this.opts.warnDays) {
      this.log.warn({ file: this.files.cert, notAfter: this.current.serverNotAfter.toISOString(), daysLeft: Math.floor(days) }, days <= 0 ? 'server certificate has EXPIRED' : 'server certificate expires soon; replace it (reloaded without restart)');
    }
    const next = this.current.crlNextUpdate;
    if (next && next.getTime() - Date.now() < 2 * DAY_MS) {
      this.log.warn({ file: this.files.crl, nextUpdate: next.toISOString() }, next.getTime() < Date.now() ? 'CRL is past its nextUpdate: handshakes fail until it is renewed' : 'CRL nextUpdate is near; publish a fresh CRL');
    }
  }

  close(): void {
    clearInterval(this.daily);
    clearTimeout(this.debounce);
    for (const f of this.watched) unwatchFile(f);
  }
}
