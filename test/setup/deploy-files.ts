import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

/** The repository's deploy/ folder: what operators install, read by the tests as committed. */
export const DEPLOY_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../deploy');

export const deployFile = (...parts: string[]) => path.join(DEPLOY_DIR, ...parts);

/** An executable on PATH or in the sbin folders (Debian puts haproxy in /usr/sbin, often not on a user's PATH). */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.map((d) => path.join(d, name)).find((p) => existsSync(p));
}

/** One PromQL expression and where it came from (for messages). */
export interface Expression {
  readonly where: string;
  readonly expr: string;
}

/** Every alert's and recording rule's expression in a Prometheus rule file. */
export function ruleExpressions(file: string): Expression[] {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { groups?: Array<{ name: string; rules?: Array<{ alert?: string; record?: string; expr?: unknown }> }> };
  return (doc.groups ?? []).flatMap((g) =>
    (g.rules ?? []).map((r) => ({ where: `${g.name}/${r.alert ?? r.record ?? '?'}`, expr: String(r.expr ?? '') })),
  );
}

interface GrafanaPanel {
  id?: number;
  title?: string;
  type?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string } | string | null;
  targets?: Array<{ expr?: string; datasource?: { uid?: string } }>;
  panels?: GrafanaPanel[];
}

export interface GrafanaDashboard {
  panels: GrafanaPanel[];
  templating?: { list?: Array<{ name: string; type: string; query?: unknown; definition?: string }> };
}

export function readDashboard(file: string): GrafanaDashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as GrafanaDashboard;
}

/** Every panel, rows' collapsed panels included. */
export function allPanels(d: GrafanaDashboard): GrafanaPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every query in a dashboard: the panels' targets and the query variables. */
export function dashboardExpressions(d: GrafanaDashboard): Expression[] {
  const out: Expression[] = [];
  for (const p of allPanels(d)) for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of d.templating?.list ?? []) if (v.type === 'query' && v.definition) out.push({ where: `variable $${v.name}`, expr: v.definition });
  return out;
}

/**
 * The sluice metric names an expression uses: identifiers starting with sluice_ (lower case, so the catalogue
 * codes in label values, SLUICE_ERR_…, are not taken for metrics).
 */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/(?<![A-Za-z0-9_:])sluice_[a-z0-9_:]+/g) ?? [])];
}

/**
 * The names a scrape must declare for these references to work: a name as declared, or a histogram's
 * _bucket/_sum/_count series. Returns the references that match nothing.
 */
export function missingMetrics(names: Iterable<string>, families: ReadonlyMap<string, string>): string[] {
  const missing: string[] = [];
  for (const name of names) {
    if (families.has(name)) continue;
    const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
    if (base && (families.get(base) === 'histogram' || families.get(base) === 'summary')) continue;
    missing.push(name);
  }
  return missing;
}

/**
 * The values an expression matches a label against, for label `label` (`label="v"`, and each alternative of
 * `label=~"a|b"` when it is a plain list of alternatives).
 */
export function labelValues(expr: string, label: string): string[] {
  const out: string[] = [];
  for (const m of expr.matchAll(new RegExp(`(?<![A-Za-z0-9_])${label}\\s*(=~|=)\\s*"([^"]*)"`, 'g'))) {
    const value = m[2] as string;
    if (m[1] === '=') out.push(value);
    else if (/^[A-Za-z0-9_|]+$/.test(value)) out.push(...value.split('|'));
  }
  return out;
}

/** Grafana's variables replaced by what Prometheus could evaluate (for checking the dashboard's queries). */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m').replace(/\$\{?instance\}?/g, '.*');
}
