import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ReadingCache } from '../../src/format/reading-cache.ts';
import { createLogger } from '../../src/log.ts';
import { Feed } from '../../src/stream/feed.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';

// The fast path holds the notifications that arrive while its probe of the LISTEN connection is out (Feed.note).
// However many arrive, only a bounded number keep their rows; the rest keep their transaction id and are read.

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

it('holds at most 2,000 payloads with their rows while a probe is out; the rest keep only their transaction id', async () => {
  let release = (): void => undefined;
  const probe = () => new Promise<void>((r) => (release = r));
  const feed = new Feed(db.pool, new ReadingCache(1000), createLogger('silent'), { pageRows: 100, pollIntervalMs: 60_000, probe });
  const snap = await feed.start();
  try {
    const key = (await db.pool.query<{ key: Buffer }>('select key from sluice_notify_key')).rows[0]?.key as Buffer;
    const xid = snap.xmax + 1;
    const signed = (i: number) => {
      const body = `\n0.5,,,,,,,,,2026-01-01 00:00:00,${i},,,7,${i},${xid + i}`;
      return 'r' + createHash('sha256').update(key).update(createHash('sha256').update(body).digest()).digest('hex') + body;
    };
    for (let i = 0; i < 5000; i++) expect(feed.note('reading', signed(i))).toBe(false); // signed rows: no read needed now
    const noted = (feed as unknown as { noted: Array<{ kind: string; rows?: string[] }> }).noted;
    expect(noted).toHaveLength(5000);
    expect(noted.filter((n) => n.kind === 'rows')).toHaveLength(2000);
    expect(noted.filter((n) => n.kind === 'wake')).toHaveLength(3000);
    expect(feed.stats.forged).toBe(0);
    // A forged one is not held at all.
    expect(feed.note('reading', signed(1) + '9')).toBe(false); // the body changed after signing
    expect(feed.stats.forged).toBe(1);
    expect(noted).toHaveLength(5000);
    release();
    await new Promise((r) => setTimeout(r, 50));
    // The probe's answer took them all: none of these transactions exists (none is visible to a read), so
    // nothing was delivered from them (the feed is not listening), and the queue is empty.
    expect((feed as unknown as { noted: unknown[] }).noted).toHaveLength(0);
    expect(feed.stats.fastRows).toBe(0);
  } finally {
    feed.close();
  }
});
