import { readFile, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoadTest } from '../../src/loadtest/loadtest.ts';
import { writeReport } from '../../src/loadtest/report.ts';
import { createTestDatabase, type TestDatabase } from '../setup/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

describe('load test (short)', () => {
  it('delivers every simulated reading to every client exactly once, in order, and writes a readable report', async () => {
    const r = await runLoadTest({ databaseUrl: db.url, subscribers: 12, slus: 20, rate: 400, durationS: 3, partners: 3, workers: 1, slow: 1, drainMs: 15_000 });
    expect(r.sim.written).toBeGreaterThan(800);
    expect(r.clients.total).toBe(12);
    expect(r.clients.lost).toBe(0);
    expect(r.clients.extra).toBe(0);
    expect(r.clients.outOfOrder).toBe(0);
    expect(r.clients.complete).toBe(12);
    expect(r.ok).toBe(true);
    // Every client's expectation is what the simulator wrote for its SLUs; the all-SLU ones got everything.
    const all = r.perClient.filter((c) => c.query === '');
    expect(all.length).toBeGreaterThan(0);
    for (const c of all) expect(c.received).toBe(r.sim.written);
    expect(r.latency.count).toBeGreaterThan(0);
    expect(r.series.length).toBeGreaterThanOrEqual(3);
    const files = await writeReport(r, `var/test-loadtest-${process.pid}`);
    const html = await readFile(files.html, 'utf8');
    expect(html).toContain('uPlot');
    expect(html).not.toMatch(/<script[^>]+src=/); // self-contained
    expect(JSON.parse(await readFile(files.json, 'utf8')).ok).toBe(true);
    await rm(`var/test-loadtest-${process.pid}`, { recursive: true, force: true });
  }, 90_000);
});
