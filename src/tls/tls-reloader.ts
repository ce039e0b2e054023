import { randomBytes } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import type { Server } from 'node:https';
import type { Logger } from 'pino';
import { TlsMaterial, type TlsFiles } from './tls-material.ts';

const DAY_MS = 86_400_000;

/**
 * Keeps the server's TLS material current without a restart: on reload() (SIGHUP) and, with `watch`, when a
 * file changes. Connected clients stay connected (setSecureContext applies to new handshakes); session ticket
 * keys are rotated so no TLS session from before the reload can be resumed; `onReload` lets the gateway close
 * live streams of certificates that were just revoked. A reload that fails (a half-written file, a bad PEM)
 * keeps the previous material and logs why.
 */
export class TlsReloader {
  current: TlsMaterial;
  private server: Server | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly daily: NodeJS.Timeout;
  private readonly watched: string[] = [];

  constructor(
    private readonly files: TlsFiles,
    private readonly log: Logger,
    private readonly opts: { watch: boolean; warnDays: number; onReload?: (m: TlsMaterial) => void },
  ) {
    this.current = TlsMaterial.load(files);
    this.warnExpiry();
    this.daily = setInterval(() => this.warnExpiry(), DAY_MS);
    this.daily.unref();
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
        this.debounce = setTimeout(() => this.reload(`${f} changed`), 300); // several files are often rewritten together
      });
    }
  }

  /** Re-reads every file and applies them; false (and the old material kept) when they are unusable. */
  reload(reason: string): boolean {
    let next: TlsMaterial;
    try {
      next = TlsMaterial.load(this.files);
    } catch (err) {
      this.log.error({ reason, err: (err as Error).message }, 'TLS reload failed; keeping the previous certificates');
      return false;
    }
    if (this.server) {
      try {
        this.server.setSecureContext(next.options);
      } catch (err) {
        this.log.error({ reason, err: (err as Error).message }, 'TLS reload failed (key and certificate do not match?); keeping the previous ones');
        return false;
      }
      this.server.setTicketKeys(randomBytes(48));
    }
    this.current = next;
    this.log.info({ reason, denied: next.revokedCount, serverNotAfter: next.serverNotAfter.toISOString() }, 'TLS material reloaded');
    this.warnExpiry();
    this.opts.onReload?.(next);
    return true;
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
