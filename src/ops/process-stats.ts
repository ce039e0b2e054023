import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Process figures for /readyz (and the load test): memory, CPU time, and the event-loop delay since the previous
 * call (the histogram is reset on every read, so a poller sees one interval at a time).
 */
export function processStats(): () => Record<string, number> {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  return () => {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    const ns = (x: number) => Math.round((x / 1e6) * 100) / 100; // ns -> ms, 2 decimals
    const out = {
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      cpuUserMs: Math.round(cpu.user / 1000),
      cpuSystemMs: Math.round(cpu.system / 1000),
      eventLoopDelayP50Ms: loop.count ? ns(loop.percentile(50)) : 0,
      eventLoopDelayP99Ms: loop.count ? ns(loop.percentile(99)) : 0,
      eventLoopDelayMaxMs: loop.count ? ns(loop.max) : 0,
    };
    loop.reset();
    return out;
  };
}
