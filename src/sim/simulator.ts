import pg from 'pg';
import { legacyTime, SluModel, type SimReading } from './model.ts';

export interface SimulatorOptions {
  readonly databaseUrl: string;
  /** Number of SLUs, ids sluBase .. sluBase + slus - 1. */
  readonly slus: number;
  readonly sluBase?: number;
  /** Readings per second in total (spread round-robin over the SLUs). */
  readonly rate: number;
  readonly durationS: number;
  /** Concurrent writer connections. SLU s always goes through writer s % writers, so its readings commit in order. */
  readonly writers?: number;
  /** Rows per INSERT statement at most (1 = one plain single-row INSERT per reading). At most 999. */
  readonly batchRows?: number;
  readonly seed?: number;
  /** Probability that a reading starts an outage (a few zero readings). */
  readonly outageRate?: number;
  /** After each committed statement: its key (t up to the millisecond, shared by its rows only) and when the commit returned. */
  readonly onCommit?: (c: { key: string; rows: number; committedAt: number; sluIds: readonly number[] }) => void;
  /** About once a second. */
  readonly onProgress?: (p: SimProgress) => void;
  readonly signal?: AbortSignal;
}

export interface SimProgress {
  readonly elapsedS: number;
  readonly written: number;
  /** Readings/s over the last interval. */
  readonly rate: number;
  /** Readings generated but not yet committed (writers behind the asked rate). */
  readonly backlog: number;
}

export interface SimSummary {
  readonly written: number;
  readonly durationS: number;
  readonly rate: number;
  readonly asked: number;
  /** Readings written per SLU id. */
  readonly perSlu: ReadonlyMap<number, number>;
  readonly statements: number;
}

const COLS = ['slu_id', 't', 'p1', 'p2', 'p3', 'k1', 'k2', 'k3', 'a1', 'a2', 'a3', 'v1', 'v2', 'v3'] as const;

function insertSql(rows: number): string {
  const tuples: string[] = [];
  for (let r = 0; r < rows; r++) tuples.push('(' + COLS.map((_, c) => `$${r * COLS.length + c + 1}`).join(',') + ')');
  return `insert into slu_reading (${COLS.join(', ')}) values ${tuples.join(',')}`;
}

/** Epoch time with sub-millisecond resolution, comparable across threads of this process. */
export const nowMs = () => performance.timeOrigin + performance.now();

/**
 * Writes realistic readings into slu_reading as field writers do: plain INSERT statements (optionally several
 * rows each) over several connections, paced to `rate`. Usable as a library (the load test drives it) and by
 * `npm run simulate`.
 */
export async function runSimulator(opts: SimulatorOptions): Promise<SimSummary> {
  const writers = Math.max(1, opts.writers ?? 4);
  const batchRows = Math.min(999, Math.max(1, opts.batchRows ?? 200));
  const base = opts.sluBase ?? 1;
  const seed = opts.seed ?? 1;
  const models = Array.from({ length: opts.slus }, (_, i) => new SluModel(base + i, seed, opts.outageRate));
  let failure: unknown;
  const clients = await Promise.all(
    Array.from({ length: writers }, async () => {
      const c = new pg.Client({ connectionString: opts.databaseUrl, application_name: 'sluice-simulate' });
      // A lost connection fails the writer's next query (and so the run) instead of crashing the process.
      c.on('error', (err: Error) => (failure ??= err));
      await c.connect();
      return c;
    }),
  );
  const queues: SimReading[][][] = Array.from({ length: writers }, () => []);
  const perSlu = new Map<number, number>();
  let written = 0;
  let generated = 0;
  let statements = 0;
  let next = 0; // round-robin position over the SLUs
  let lastMsKey = 0;
  let done = false;

  const wake: Array<(() => void) | undefined> = new Array(writers);
  const loops = clients.map(async (client, w) => {
    const queue = queues[w] as SimReading[][];
    for (;;) {
      const batch = queue.shift();
      if (!batch) {
        if (done) return;
        await new Promise<void>((r) => (wake[w] = r));
        continue;
      }
      const values: unknown[] = [];
      for (const r of batch) values.push(r.slu_id, r.t, r.p1, r.p2, r.p3, r.k1, r.k2, r.k3, r.a1, r.a2, r.a3, r.v1, r.v2, r.v3);
      await client.query({ name: `sim_insert_${batch.length}`, text: insertSql(batch.length), values });
      const committedAt = nowMs();
      statements++;
      written += batch.length;
      for (const r of batch) perSlu.set(r.slu_id, (perSlu.get(r.slu_id) ?? 0) + 1);
      opts.onCommit?.({ key: (batch[0] as SimReading).t.slice(0, 23), rows: batch.length, committedAt, sluIds: batch.map((r) => r.slu_id) });
    }
  });
  const failed = Promise.all(loops).catch((err: unknown) => {
    failure = err;
  });

  const t0 = nowMs();
  const endAt = t0 + opts.durationS * 1000;
  let lastProgress = t0;
  let lastWritten = 0;
  const backlogCap = Math.max(opts.rate, 10_000); // never queue more than ~1 s of readings
  while (!opts.signal?.aborted && failure === undefined) {
    const now = nowMs();
    if (now >= endAt) break;
    const due = Math.floor(((now - t0) / 1000) * opts.rate) - generated;
    if (due > 0 && generated - written < backlogCap) {
      // One statement key (t to the millisecond) per batch: a distinct millisecond for each, always increasing,
      // so every SLU's t increases in commit order and a reading's t tells which statement wrote it.
      const byWriter: SluModel[][] = Array.from({ length: writers }, () => []);
      for (let i = 0; i < due; i++) {
        const m = models[next] as SluModel;
        next = (next + 1) % models.length;
        (byWriter[m.sluId % writers] as SluModel[]).push(m);
      }
      for (let w = 0; w < writers; w++) {
        const ms = byWriter[w] as SluModel[];
        for (let i = 0; i < ms.length; i += batchRows) {
          lastMsKey = Math.max(lastMsKey + 1, Math.floor(Date.now()));
          const batch = ms.slice(i, i + batchRows).map((m, j) => m.next(lastMsKey, j));
          (queues[w] as SimReading[][]).push(batch);
        }
        wake[w]?.();
        wake[w] = undefined;
      }
      generated += due;
    }
    if (now - lastProgress >= 1000) {
      opts.onProgress?.({ elapsedS: (now - t0) / 1000, written, rate: ((written - lastWritten) * 1000) / (now - lastProgress), backlog: generated - written });
      lastProgress = now;
      lastWritten = written;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  done = true;
  for (let w = 0; w < writers; w++) wake[w]?.();
  await failed;
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  if (failure !== undefined) throw failure;
  const durationS = (nowMs() - t0) / 1000;
  return { written, durationS, rate: written / durationS, asked: opts.rate, perSlu, statements };
}

export { legacyTime };
