import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { ConfigSchema, loadConfig } from '../../src/config/config.ts';
import { ErrorCodes } from '../../src/errors.ts';
import type { Gateway } from '../../src/gateway.ts';
import { createCrl } from '../../src/tls/certificates.ts';
import { REFUSED } from '../../src/tls/handshake-guard.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';
import {
  allPanels, dashboardExpressions, deployFile, findExecutable, labelValues, metricNames, missingMetrics, readDashboard, ruleExpressions, withoutGrafanaVariables,
  type Expression,
} from '../setup/deploy-files.ts';
import { startTestGateway } from '../setup/gateway.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { metricFamilies, scrape } from '../setup/prometheus.ts';

// The files in deploy/ against the gateway they describe: every metric the alert rules and the Grafana dashboard
// use exists in a real gateway's /metrics (so renaming a metric fails here, not silently in production), every
// error code they match on is in the catalogue, and the example environment is a valid configuration.
const ALERTS = deployFile('prometheus/alerts.yml');
const DASHBOARD = deployFile('grafana/sluice-dashboard.json');
const PROMTOOL = findExecutable('promtool');
if (!PROMTOOL) console.warn('promtool checks of deploy/prometheus skipped: promtool not found: apt-get install prometheus');

let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let families: Map<string, string>;
let metricsText: string;
const alertExprs = ruleExpressions(ALERTS);
const dashboard = readDashboard(DASHBOARD);
const dashboardExprs = dashboardExpressions(dashboard);

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  // With a CRL, so that every material of sluice_tls_expiry_timestamp_seconds has a series.
  const crlFile = path.join(pki.dir, 'ca.crl');
  await writeFile(crlFile, await createCrl(pki.ca, []));
  ({ gateway } = await startTestGateway(db.url, pki, { TLS_CRL: crlFile, TLS_WATCH: 'false' }));
  metricsText = await scrape(gateway.opsPort as number);
  families = metricFamilies(metricsText);
});
afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

function referenced(exprs: readonly Expression[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of exprs) for (const n of metricNames(e.expr)) out.set(n, [...(out.get(n) ?? []), e.where]);
  return out;
}

/** "name (used by …)" for every reference the scrape does not declare. */
function unknown(refs: Map<string, string[]>): string[] {
  return missingMetrics(refs.keys(), families).map((n) => `${n} (used by ${refs.get(n)?.slice(0, 3).join(', ')})`);
}

describe('metric names in deploy/ exist in a running gateway', () => {
  it('the alert rules use only metrics the gateway exports', () => {
    const refs = referenced(alertExprs);
    // The rules this file is for (a refactor that drops them should be deliberate).
    for (const n of ['sluice_pg_notification_queue_usage', 'sluice_listener_up', 'sluice_ready', 'sluice_stream_closes_total', 'sluice_refusals_total', 'sluice_tls_expiry_timestamp_seconds', 'sluice_tls_degraded']) {
      expect([...refs.keys()]).toContain(n);
    }
    expect(unknown(refs)).toEqual([]);
  });

  it('the dashboard uses only metrics the gateway exports', () => {
    const refs = referenced(dashboardExprs);
    expect(refs.size).toBeGreaterThanOrEqual(20);
    expect(unknown(refs)).toEqual([]);
  });

  it('a renamed metric would be caught', () => {
    // The same check against the scrape with one family renamed, as a refactor of src/ops/metrics.ts would do.
    const renamed = new Map(families);
    renamed.delete('sluice_notify_to_send_seconds');
    renamed.set('sluice_notify_to_sockets_seconds', 'histogram');
    expect(missingMetrics(referenced(dashboardExprs).keys(), renamed)).toEqual(['sluice_notify_to_send_seconds_bucket']);
    const dropped = new Map(families);
    dropped.delete('sluice_ready');
    expect(missingMetrics(referenced(alertExprs).keys(), dropped)).toEqual(['sluice_ready']);
    // A histogram's suffixes are accepted only on histograms.
    expect(missingMetrics(['sluice_ready_count', 'sluice_feed_read_seconds_sum', 'sluice_feed_read_seconds_total'], families)).toEqual(['sluice_ready_count', 'sluice_feed_read_seconds_total']);
  });

  it('label values they match on exist: catalogue codes, refusal reasons, TLS materials', () => {
    const all = [...alertExprs, ...dashboardExprs];
    const codes = all.flatMap((e) => labelValues(e.expr, 'code'));
    expect(codes).toContain('SLUICE_ERR_SLOW_CONSUMER');
    expect(codes).toContain('SLUICE_ERR_REPLAYS_BUSY');
    for (const c of codes) expect(Object.keys(ErrorCodes), `code="${c}"`).toContain(c);
    for (const r of all.flatMap((e) => labelValues(e.expr, 'reason'))) expect(Object.values(REFUSED), `reason="${r}"`).toContain(r);
    const materials = [...metricsText.matchAll(/^sluice_tls_expiry_timestamp_seconds\{material="([^"]+)"\}/gm)].map((m) => m[1]);
    expect(materials.sort()).toEqual(['ca_certificate', 'crl', 'server_certificate']);
    const used = all.flatMap((e) => labelValues(e.expr, 'material'));
    expect(used.length).toBeGreaterThan(0);
    for (const m of used) expect(materials, `material="${m}"`).toContain(m);
  });
});

describe('the Grafana dashboard', () => {
  it('is templated on a Prometheus datasource variable, with a panel for each area and no overlapping panels', () => {
    const vars = dashboard.templating?.list ?? [];
    expect(vars.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const panels = allPanels(dashboard);
    for (const p of panels.filter((q) => q.type !== 'row')) {
      expect(p.datasource, `panel "${p.title}"`).toMatchObject({ uid: '${datasource}' });
      for (const t of p.targets ?? []) expect(t.datasource?.uid, `panel "${p.title}"`).toBe('${datasource}');
    }
    const exprs = dashboardExprs.map((e) => e.expr).join('\n');
    for (const n of ['sluice_stream_clients', 'sluice_readings_out_total', 'sluice_notify_to_send_seconds_bucket', 'sluice_feed_read_seconds_bucket', 'sluice_rest_request_duration_seconds_count', 'sluice_rest_request_duration_seconds_bucket', 'sluice_refusals_total', 'sluice_stream_closes_total', 'sluice_pg_notification_queue_usage', 'sluice_tls_degraded', 'sluice_tls_pending_handshakes', 'sluice_replays_running', 'sluice_tls_expiry_timestamp_seconds']) {
      expect(exprs).toContain(n);
    }
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = panels.map((p) => ({ title: p.title, ...(p.gridPos as { x: number; y: number; w: number; h: number }) }));
    for (const [i, a] of boxes.entries()) {
      expect(a.x + a.w, `panel "${a.title}"`).toBeLessThanOrEqual(24);
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `panels "${a.title}" and "${b.title}" overlap`).toBe(false);
      }
    }
  });
});

describe.skipIf(!PROMTOOL)('promtool', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-promtool-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));
  const run = (...args: string[]) => spawnSync(PROMTOOL as string, args, { encoding: 'utf8' });

  it('accepts the alert rules and their unit tests pass (alerts.test.yml)', () => {
    const check = run('check', 'rules', ALERTS);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const test = run('test', 'rules', deployFile('prometheus/alerts.test.yml'));
    expect(test.status, test.stdout + test.stderr).toBe(0);
  });

  it('parses every dashboard query (as recording rules)', async () => {
    // Panel queries only: the variable's label_values() is Grafana's, not PromQL.
    const rules = dashboardExprs.filter((e) => e.where.startsWith('panel')).map((e, i) => ({ record: `dashboard:query_${i}`, expr: withoutGrafanaVariables(e.expr) }));
    const file = path.join(dir, 'dashboard-queries.yml');
    await writeFile(file, toYaml({ groups: [{ name: 'dashboard', rules }] }));
    const check = run('check', 'rules', file);
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });
});

/** KEY=value lines of an environment file (comments and blank lines skipped). */
function envFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1] as string] = (m[2] as string).trim();
  }
  return out;
}

describe('the systemd unit and its environment file', () => {
  it('the example environment is a valid configuration, and the unit outlasts its drain', async () => {
    const env = envFile(await readFile(deployFile('sluice.env.example'), 'utf8'));
    const known = Object.keys(ConfigSchema.unwrap().shape);
    const outside = ['SLUICE_BANNER', 'NODE_ENV']; // read by server.ts and by Node's libraries, not by the config
    for (const k of Object.keys(env)) expect([...known, ...outside], `${k} in sluice.env.example`).toContain(k);
    const config = loadConfig(env);
    expect(config.TLS_DEV_CERTS).toBe(false);
    expect(config.MAX_PENDING_HANDSHAKES_PER_ADDRESS).toBe(config.MAX_PENDING_HANDSHAKES); // behind HAProxy: see haproxy.cfg
    const unit = await readFile(deployFile('sluice.service'), 'utf8');
    const stopS = Number(/^TimeoutStopSec=(\d+)s$/m.exec(unit)?.[1]);
    expect(stopS * 1000).toBeGreaterThan(config.SHUTDOWN_TIMEOUT_MS);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^EnvironmentFile=\/etc\/sluice\/sluice\.env$/m);
    // HAProxy sends partners to PORT and health-checks OPS_PORT: the same numbers in both files.
    const cfg = await readFile(deployFile('haproxy.cfg'), 'utf8');
    expect(cfg).toMatch(new RegExp(`^\\s*default-server check port ${config.OPS_PORT} `, 'm'));
    for (const m of cfg.matchAll(/^\s*server \S+ (\S+)/gm)) expect(m[1]).toMatch(new RegExp(`:${config.PORT}$`));
  });

  it.skipIf(!findExecutable('systemd-analyze'))('systemd-analyze verifies the unit', () => {
    const r = spawnSync(findExecutable('systemd-analyze') as string, ['verify', deployFile('sluice.service')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toBe(''); // warnings (an unknown key, a key in the wrong section) too
  });

  it.skipIf(!findExecutable('haproxy'))('haproxy accepts haproxy.cfg as committed', () => {
    const r = spawnSync(findExecutable('haproxy') as string, ['-c', '-f', deployFile('haproxy.cfg')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
