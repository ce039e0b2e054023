import { Grants } from '../access/grants.ts';
import type { Config } from '../config/config.ts';
import type { Database } from '../db/database.ts';
import { latestPerSlu } from '../db/latest.ts';
import { ReadingCache } from '../format/reading-cache.ts';
import { Freshness } from '../hub/freshness.ts';
import { Hub } from '../hub/hub.ts';
import { LatestStore } from '../hub/latest-store.ts';
import { Listener } from '../listen/listener.ts';
import type { Logger } from '../log.ts';
import { encodeCursor } from './cursor.ts';
import { Feed } from './feed.ts';

/** Where the live path reports its timings (the Prometheus histograms; absent in tests that do not care). */
export interface LiveObserver {
  /** NOTIFY arrival -> frames written (undefined for reads the poll timer found), and the writing alone, seconds. */
  published(notifyToSend: number | undefined, publish: number): void;
  /** One feed read, seconds. */
  read(seconds: number): void;
}

/** The live path of one process: LISTEN -> feed -> hub (-> sessions), and the state REST derives from it. */
export interface Live {
  readonly cache: ReadingCache;
  readonly feed: Feed;
  readonly hub: Hub;
  readonly latest: LatestStore;
  readonly freshness: Freshness;
  readonly listener: Listener;
  readonly grants: Grants;
  observe(o: LiveObserver): void;
  close(): Promise<void>;
}

/**
 * Starts the live path. A reading's way: an INSERT fires the statement trigger (sql/014) -> the Listener gets
 * the NOTIFY -> the Feed delivers the rows it carries at once (a small statement's), and reads everything
 * committed since its snapshot (the rest, and the confirmation) -> the Hub hands each batch to the
 * sessions subscribed to its SLUs (src/ws/session.ts) -> the socket. The feed starts at a snapshot; the latest
 * store is then filled by a scan that sees at least as much and kept current by every batch after it.
 */
export async function startLive(config: Config, db: Pick<Database, 'url' | 'pool' | 'feedPool' | 'feedPrepared'> & { partitions?: Database['partitions'] }, log: Logger): Promise<Live> {
  const cache = new ReadingCache(config.READING_CACHE_SIZE);
  const feed = new Feed(db.feedPool, cache, log, { pageRows: config.FEED_PAGE_ROWS, pollIntervalMs: config.FEED_POLL_INTERVAL_MS, prepared: db.feedPrepared, fastPath: config.FEED_FAST_PATH, confirmMs: config.FEED_CONFIRM_MS, probe: () => listener.probe(), ...(db.partitions ? { hotFrom: db.partitions.hotFrom } : {}) });
  const start = await feed.start();
  const latest = new LatestStore(() => latestPerSlu(db.pool, cache), log);
  const freshness = new Freshness();
  const hub = new Hub((err) => log.error({ err }, 'stream subscriber failed'));
  hub.setInitialCursor(encodeCursor({ kind: 'settled', s: start }));
  const grants = new Grants(db.pool, log);
  const listener = new Listener(
    { connectionString: db.url, retryBaseMs: config.LISTEN_RETRY_BASE_MS, retryCapMs: config.LISTEN_RETRY_CAP_MS, healthCheckMs: config.LISTEN_HEALTHCHECK_MS },
    log,
  );
  let observer: LiveObserver | undefined;
  // Commit -> send: from the first NOTIFY since the last published read to the end of publishing it.
  let notifiedAt: number | undefined;

  // UPDATE, DELETE, TRUNCATE: seen by the feed in the read whose snapshot includes them, before that read's rows.
  feed.on('change', () => {
    freshness.invalidate();
    latest.onChange('readings updated, deleted or truncated');
    hub.tableChanged();
  });
  feed.on('batch', (batch) => {
    // The sockets first: the REST bookkeeping below is not what a subscriber waits for.
    const t0 = performance.now();
    hub.publish(batch);
    const t1 = performance.now();
    latest.onBatch(batch.readings);
    freshness.onBatch(batch.readings);
    if (batch.readings.length > 0) {
      observer?.published(notifiedAt === undefined ? undefined : (t1 - notifiedAt) / 1000, (t1 - t0) / 1000);
      notifiedAt = undefined;
    }
  });
  feed.on('read', (seconds) => observer?.read(seconds));
  // While LISTEN is down its grant NOTIFYs are lost: the counter read by every feed read catches the change
  // (within FEED_POLL_INTERVAL_MS). While it is up, the NOTIFY may still be on its way when a read sees the
  // counter move: every identity is reloaded then too (grant changes are rare).
  // Either way the read that saw the counter move delivers only once the reload is applied (Feed.hold).
  feed.on('grants', () => feed.hold(grants.changed()));
  feed.on('error', () => undefined); // logged by the feed; the next read covers the gap

  listener.on('notify', (payload) => {
    notifiedAt ??= performance.now();
    // A small statement's rows go out after one probe (sql/014, Feed.note); a read confirms them a little later.
    // Anything else: read now.
    if (feed.note('reading', payload)) feed.wake();
    else feed.wakeSoon();
  });
  // Deliveries wait for the reload: a reading committed after a revoke must not go out under the old grants.
  listener.on('grant', (partner) => feed.hold(grants.changed(partner)));
  // A change wakes the feed, which sees it through the change counter (and so does its next poll, if missed).
  // Payloads wait for that read: rows a writer inserted after its change must not overtake it.
  listener.on('change', () => {
    feed.note('change', '');
    feed.wake();
  });
  listener.on('state', (s) => feed.setListening(s === 'listening'));
  let listenedBefore = false;
  listener.on('listening', () => {
    feed.setListening(true); // payloads wait for a read that covers whatever committed while LISTEN was away
    feed.wake(); // catch up on whatever committed while LISTEN was down (rows and changes alike)
    if (listenedBefore) feed.hold(grants.changed()); // grant notifications may have been missed: reload them all
    listenedBefore = true;
  });

  // Every member is visited once per WS_PROGRESS_MS / 2, a slice every 100 ms (at most every 20 ms for tiny intervals).
  const sweepMs = Math.min(100, Math.max(20, config.WS_PROGRESS_MS / 20));
  const idleSweep = setInterval(() => hub.sweepIdle(sweepMs / Math.max(sweepMs, config.WS_PROGRESS_MS / 2)), sweepMs);
  idleSweep.unref();
  const close = async () => {
    clearInterval(idleSweep);
    await listener.close();
    feed.close();
  };
  try {
    await latest.start();
    await listener.start();
  } catch (err) {
    await close();
    throw err;
  }
  return { cache, feed, hub, latest, freshness, listener, grants, observe: (o) => (observer = o), close };
}
