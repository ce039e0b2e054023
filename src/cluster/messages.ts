import type { Health } from '../ops/ops-server.ts';

/** Primary -> worker: report your /readyz. */
export interface HealthRequest {
  readonly type: 'sluice:health?';
  readonly id: number;
}

/** Worker -> primary: its /readyz report. */
export interface HealthReply {
  readonly type: 'sluice:health';
  readonly id: number;
  readonly pid: number;
  readonly health: Health;
}

/** Primary -> worker: your metrics, as prom-client's getMetricsAsJSON(). */
export interface MetricsRequest {
  readonly type: 'sluice:metrics?';
  readonly id: number;
}

/** Worker -> primary: its metrics. */
export interface MetricsReply {
  readonly type: 'sluice:metrics';
  readonly id: number;
  readonly metrics: unknown[];
}

export function isMetricsRequest(m: unknown): m is MetricsRequest {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'sluice:metrics?';
}

export function isMetricsReply(m: unknown): m is MetricsReply {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'sluice:metrics';
}

export function isHealthRequest(m: unknown): m is HealthRequest {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'sluice:health?';
}

export function isHealthReply(m: unknown): m is HealthReply {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'sluice:health';
}
