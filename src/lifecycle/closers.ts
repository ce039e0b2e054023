import type { Logger } from '../log.ts';

/**
 * What a composition has opened, closed in reverse order. A close that fails is logged and the rest still
 * close: one stuck resource must not keep the others (or the process) open.
 */
export class Closers {
  private readonly fns: Array<() => unknown> = [];

  constructor(private readonly log: Logger) {}

  /** Registers `x.close()` and returns `x`. */
  add<T extends { close(): unknown }>(x: T): T {
    this.fns.push(() => x.close());
    return x;
  }

  push(fn: () => unknown): void {
    this.fns.push(fn);
  }

  async closeAll(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err }, 'error while closing');
      }
    }
  }
}
