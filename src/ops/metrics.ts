import { readdir } from 'node:fs/promises';
import client from 'prom-client';
import type pg from 'pg';

/** What the metrics read at scrape time from the rest of the gateway. */
export interface MetricSources {
  /** Cluster worker number (WORKERS > 1), labelled on the per-worker series; absent in a single process. */
  readonly worker?: number;
  readonly pool: pg.Pool;
  /** Partner CN of every connected stream client. */
  readonly streamPartners: () => Iterable<string>;
  readonly hubStats: () => { readonly batches: number; readonly framesSent: number; readonly readingsOut: number; readonly readingsIn: number };
  readonly listenerReconnects: () => number;
  /** The feed's fast path (sql/014): rows delivered from NOTIFY payloads, and payloads refused for a bad MAC. */
  readonly feedStats?: () => { readonly fastRows: number; readonly forged: number; readonly waited: number };
  /** Resumes replaying now. */
  readonly replays?: () => number;
  /** True while TLS is degraded: a reload was refused (the previous material serves) or the CRL is out of date (TlsReloader.degraded). */
  readonly tlsDegraded?: () => boolean;
  /** Connections still in the TLS handshake (the handshake guard's count). */
  readonly pendingHandshakes?: () => number;
  /** True while LISTEN is in place (the listener's state is `listening`). */
  readonly listenerUp: () => boolean;
  /** True while /readyz answers 200: the database answers and LISTEN is in place (see healthReport). */
  readonly ready: () => boolean;
  /** When the TLS material in use stops working (the certificates and CRL loaded now, so after every reload). */
  readonly tlsExpiry: () => TlsExpiry;
}

/** The dates after which the loaded TLS material fails handshakes: sluice_tls_expiry_timestamp_seconds{material}. */
export interface TlsExpiry {
  /** TLS_CERT's notAfter: clients refuse the gateway. */
  readonly serverCertificate: Date;
  /** The earliest notAfter in TLS_CA: OpenSSL refuses every partner certificate of that CA. */
  readonly caCertificate: Date;
  /** The earliest nextUpdate in TLS_CRL: OpenSSL refuses every handshake of that CA's partners (absent without a CRL). */
  readonly crlNextUpdate?: Date | undefined;
}

/**
 * Prometheus metrics (prom-client) on the ops port. Counters the gateway already keeps (hub, listener) are read
 * at scrape time rather than double-counted; the rest are observed where they happen.
 */
/** Fine below 10 ms, where the stream's latency targets are (the quantiles read from them are as fine as this). */
const LATENCY_BUCKETS = [0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

export class Metrics {
  readonly registry = new client.Registry();
  /** Commit (its NOTIFY reaching the gateway) to the frame handed to the sockets, seconds, per database read. */
  readonly notifyToSend: client.Histogram;
  /** One feed read of newly committed readings (the query and its rows), seconds: the first part of notifyToSend. */
  readonly feedRead: client.Histogram;
  /** Handing one feed batch to every subscriber's socket (frames built and written), seconds: the second part. */
  readonly publish: client.Histogram;
  /** Rows replayed per resume (since=) and per listener catch-up. */
  readonly catchUpRows: client.Histogram;
  /** Stream connections closed by the gateway, by catalogue code (slow consumers: SLUICE_ERR_SLOW_CONSUMER). */
  readonly streamCloses: client.Counter<'code'>;
  /** Requests and upgrades refused, by catalogue code (grants, revocations, limits). */
  readonly refusals: client.Counter<'code'>;
  /** New TCP connections closed before their TLS handshake, by reason (see REFUSED in tls/handshake-guard.ts). */
  readonly connectionsRefused: client.Counter<'reason'>;
  /** Connections closed for not finishing the TLS handshake within TLS_HANDSHAKE_TIMEOUT_MS. */
  readonly handshakeTimeouts: client.Counter;
  readonly restDuration: client.Histogram<'route' | 'status'>;

  constructor(src: MetricSources) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'sluice_' });
    // These walk every handle, resource or file descriptor on the event loop at each scrape: with 11,000 clients a
    // /metrics read stalled the gateway 42-137 ms (bench:stream's idle phase). The counts they give are the stream
    // clients and pending handshakes, which sluice counts itself; open descriptors are read off the event loop.
    for (const name of ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total', 'nodejs_active_requests', 'nodejs_active_requests_total', 'process_open_fds']) {
      r.removeSingleMetric(`sluice_${name}`);
    }
    new client.Gauge({
      name: 'sluice_process_open_fds', help: 'Number of open file descriptors.', registers: [r],
      async collect() {
        const fds = await readdir('/proc/self/fd').catch(() => undefined);
        if (fds) this.set(fds.length - 1); // the descriptor readdir itself used is closed again
      },
    });
    new client.Gauge({
      name: 'sluice_stream_clients', help: 'Connected stream clients per partner (certificate CN).', labelNames: ['partner'], registers: [r],
      collect() {
        this.reset();
        const n = new Map<string, number>();
        for (const p of src.streamPartners()) n.set(p, (n.get(p) ?? 0) + 1);
        for (const [partner, v] of n) this.set({ partner }, v);
      },
    });
    const fromStats = (name: string, help: string, read: () => number) =>
      new client.Counter({ name, help, registers: [r], collect() { this.reset(); this.inc(read()); } });
    fromStats('sluice_readings_in_total', 'Readings read from the table by the feed.', () => src.hubStats().readingsIn);
    fromStats('sluice_readings_out_total', 'Readings sent to stream clients (one per client that got it).', () => src.hubStats().readingsOut);
    fromStats('sluice_frames_out_total', 'Reading frames sent to stream clients.', () => src.hubStats().framesSent);
    fromStats('sluice_feed_batches_total', 'Database reads of the feed that were published.', () => src.hubStats().batches);
    fromStats('sluice_listener_reconnects_total', 'Times the LISTEN connection was re-established.', src.listenerReconnects);
    fromStats('sluice_fast_path_readings_total', 'Readings delivered from their NOTIFY payload, before the feed read them (sql/014).', () => src.feedStats?.().fastRows ?? 0);
    fromStats('sluice_fast_path_waited_total', 'NOTIFY payloads whose rows were left to the read (an earlier transaction not read yet, LISTEN just back, a change, the cursor full).', () => src.feedStats?.().waited ?? 0);
    fromStats('sluice_forged_notify_total', 'NOTIFY payloads with rows but without a valid MAC: ignored (someone other than the trigger sent them).', () => src.feedStats?.().forged ?? 0);
    new client.Gauge({
      name: 'sluice_worker_stream_clients', help: 'Connected stream clients per gateway process (cluster worker; "0" in a single process).', labelNames: ['worker'], registers: [r],
      collect() {
        let n = 0;
        for (const _ of src.streamPartners()) n++;
        this.set({ worker: String(src.worker ?? 0) }, n);
      },
    });
    new client.Gauge({
      name: 'sluice_replays_running', help: 'Stream resumes (since=) replaying now; at REPLAY_MAX_CONCURRENT new ones are refused.', registers: [r],
      collect() {
        this.set(src.replays?.() ?? 0);
      },
    });
    new client.Gauge({
      name: 'sluice_pg_notification_queue_usage', help: 'pg_notification_queue_usage(): fraction of the NOTIFY queue in use (trouble near 1).', registers: [r],
      aggregator: 'max', // one database: every worker reads the same figure
      async collect() {
        try {
          const res = await src.pool.query<{ u: number }>('select pg_notification_queue_usage() as u');
          this.set(Number(res.rows[0]?.u ?? 0));
        } catch {
          this.set(Number.NaN); // database unreachable: shown as NaN rather than a stale value
        }
      },
    });
    // Partitions (sql/010): how far ahead they are made (under a width, writes are about to land in the default
    // partition: the maintenance is failing) and what the default partition holds (old or far-future t).
    new client.Gauge({
      name: 'sluice_partitions_ahead_seconds', help: 'How far past now the newest partition of slu_reading ends, seconds (the maintenance keeps PARTITIONS_AHEAD widths).', registers: [r],
      aggregator: 'min',
      async collect() {
        try {
          const res = await src.pool.query<{ s: string | null }>(`select extract(epoch from max(hi) - (now() at time zone 'utc'))::text as s from sluice_partition`);
          this.set(res.rows[0]?.s == null ? Number.NaN : Number(res.rows[0].s));
        } catch {
          this.set(Number.NaN);
        }
      },
    });
    new client.Gauge({
      name: 'sluice_default_partition_rows', help: 'Rows in the default partition of slu_reading (estimate): readings whose t no partition covers.', registers: [r],
      aggregator: 'max',
      async collect() {
        try {
          const res = await src.pool.query<{ n: string | null }>(`select greatest(reltuples, 0)::bigint::text as n from pg_class where oid = to_regclass('slu_reading_default')`);
          this.set(Number(res.rows[0]?.n ?? 0));
        } catch {
          this.set(Number.NaN);
        }
      },
    });
    new client.Gauge({
      name: 'sluice_tls_degraded', help: '1 while the last TLS reload was refused (the previous certificates and CRL still serve) or the CRL is out of date; 0 otherwise.', registers: [r],
      aggregator: 'max', // degraded in any worker
      collect() {
        this.set(src.tlsDegraded?.() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'sluice_listener_up', help: '1 while the LISTEN connection is in place (new readings arrive at once); 0 while it connects or reconnects.', registers: [r],
      aggregator: 'min', // down in any worker: that worker's clients wait for the poll
      collect() {
        this.set(src.listenerUp() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'sluice_ready', help: '1 while /readyz answers 200 (database answers, LISTEN in place): what a load balancer\'s health check sees; 0 otherwise.', registers: [r],
      aggregator: 'min', // the primary's /readyz is 200 only when every worker is ready
      collect() {
        this.set(src.ready() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'sluice_tls_expiry_timestamp_seconds',
      help: 'When the TLS material in use stops working, Unix seconds: server_certificate and ca_certificate notAfter (the earliest CA in TLS_CA), crl nextUpdate (the earliest CRL; absent without TLS_CRL). Alert on it minus time().',
      labelNames: ['material'], registers: [r],
      aggregator: 'min', // every worker loads the same files; during a reload the older material is the one to worry about
      collect() {
        this.reset();
        const e = src.tlsExpiry();
        this.set({ material: 'server_certificate' }, e.serverCertificate.getTime() / 1000);
        this.set({ material: 'ca_certificate' }, e.caCertificate.getTime() / 1000);
        if (e.crlNextUpdate) this.set({ material: 'crl' }, e.crlNextUpdate.getTime() / 1000);
      },
    });
    this.notifyToSend = new client.Histogram({
      name: 'sluice_notify_to_send_seconds', help: 'From a commit\'s NOTIFY arriving to its readings being written to the client sockets.', registers: [r],
      buckets: LATENCY_BUCKETS,
    });
    this.feedRead = new client.Histogram({ name: 'sluice_feed_read_seconds', help: 'One read of newly committed readings by the feed (query and rows).', registers: [r], buckets: LATENCY_BUCKETS });
    this.publish = new client.Histogram({ name: 'sluice_publish_seconds', help: 'Handing one batch of new readings to every subscriber socket.', registers: [r], buckets: LATENCY_BUCKETS });
    this.catchUpRows = new client.Histogram({ name: 'sluice_catch_up_rows', help: 'Rows replayed per stream resume.', registers: [r], buckets: [0, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000] });
    this.streamCloses = new client.Counter({ name: 'sluice_stream_closes_total', help: 'Stream connections closed by the gateway, by code.', labelNames: ['code'], registers: [r] });
    this.refusals = new client.Counter({ name: 'sluice_refusals_total', help: 'Requests and upgrades refused, by code.', labelNames: ['code'], registers: [r] });
    new client.Gauge({
      name: 'sluice_tls_pending_handshakes', help: 'Connections that have not finished the TLS handshake (capped by MAX_PENDING_HANDSHAKES).', registers: [r],
      collect() { this.set(src.pendingHandshakes?.() ?? 0); },
    });
    this.connectionsRefused = new client.Counter({
      name: 'sluice_connections_refused_total', help: 'New TCP connections closed before their TLS handshake, by reason (pending_handshakes, pending_handshakes_per_address, max_connections).',
      labelNames: ['reason'], registers: [r],
    });
    this.handshakeTimeouts = new client.Counter({ name: 'sluice_tls_handshake_timeouts_total', help: 'Connections closed for not finishing the TLS handshake within TLS_HANDSHAKE_TIMEOUT_MS.', registers: [r] });
    this.restDuration = new client.Histogram({
      name: 'sluice_rest_request_duration_seconds', help: 'REST request duration by route and status.', labelNames: ['route', 'status'], registers: [r],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
