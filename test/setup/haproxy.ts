import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A gateway as HAProxy's backend sees it: the partner port it forwards to and the ops port it health-checks. */
export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly opsPort: number;
}

/**
 * deploy/haproxy.cfg made runnable on loopback by an unprivileged test, every other line kept as committed (the
 * timeouts, balance, checks, retries, limits are what the test exercises): the frontend's bind, the backend's
 * server lines, the runtime API socket and the log target are replaced; the global maxconn is lowered to what any
 * machine's descriptor limit allows; chroot, user and group are dropped (they need root and the haproxy user). Throws when the file no longer has the shape this relies on, so a
 * restructured config fails the test instead of being half-substituted.
 */
export function haproxyConfigForTest(committed: string, opts: { port: number; backends: readonly Backend[]; statsSocket: string }): string {
  const out: string[] = [];
  let section = '';
  let binds = 0;
  let servers = 0;
  let socket = 0;
  for (const line of committed.split('\n')) {
    const words = line.trim().split(/\s+/);
    const keyword = line.trim().startsWith('#') ? '#' : (words[0] ?? '');
    if (/^\S/.test(line) && keyword !== '#' && keyword !== '') section = `${words[0]} ${words[1] ?? ''}`.trim();
    if (section === 'global' && ['chroot', 'user', 'group', 'daemon'].includes(keyword)) continue;
    if (section === 'global' && keyword === 'maxconn') {
      // HAProxy needs two descriptors per connection and refuses to start when it cannot raise its limit that far
      // (a container's hard limit); a test holds a handful of connections.
      out.push('    maxconn 4000');
      continue;
    }
    if (section === 'global' && keyword === 'log') {
      out.push('    log stderr format raw local0 info');
      continue;
    }
    if (section === 'global' && keyword === 'stats' && words[1] === 'socket') {
      socket++;
      out.push(`    stats socket ${opts.statsSocket} mode 600 level admin`);
      continue;
    }
    if (section === 'frontend sluice_partner' && keyword === 'bind') {
      if (binds++ === 0) out.push(`    bind 127.0.0.1:${opts.port}`);
      continue;
    }
    if (section === 'backend sluice_gateways' && keyword === 'server') {
      // Each test gateway has its own ops port on the one host: `port` on the server line overrides default-server's.
      if (servers++ === 0) for (const b of opts.backends) out.push(`    server ${b.name} 127.0.0.1:${b.port} port ${b.opsPort}`);
      continue;
    }
    out.push(line);
  }
  if (binds === 0 || servers < 2 || socket !== 1) {
    throw new Error(`deploy/haproxy.cfg changed shape: expected a "frontend sluice_partner" with a bind line, a "backend sluice_gateways" with server lines and one "stats socket" (found ${binds} bind, ${servers} server, ${socket} stats socket lines); update test/setup/haproxy.ts`);
  }
  return out.join('\n');
}

/** A server's state in HAProxy's own statistics (the status column of `show stat`): UP, DOWN, DRAIN, MAINT, "UP 1/2"… */
export type ServerStatus = string;

export interface RunningHaproxy {
  readonly port: number;
  readonly process: ChildProcess;
  /** Everything HAProxy printed (its log goes to stderr): shown when a test fails. */
  readonly output: string[];
  /** One command on the runtime API (admin level), its answer. */
  runtime(command: string): Promise<string>;
  /** Every server of the backend and its status. */
  servers(): Promise<Map<string, ServerStatus>>;
  /** Waits until HAProxy's health checks put `server` in `status` (UP, DOWN, DRAIN…). */
  waitFor(server: string, status: ServerStatus, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `haproxy -f <config> -db` (foreground) and resolves once its frontend port and runtime API answer. */
export async function startHaproxy(bin: string, config: (paths: { statsSocket: string }) => { text: string; port: number }): Promise<RunningHaproxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-haproxy-'));
  const statsSocket = path.join(dir, 'admin.sock');
  const { text, port } = config({ statsSocket });
  const cfgFile = path.join(dir, 'haproxy.cfg');
  await writeFile(cfgFile, text);
  const child = spawn(bin, ['-f', cfgFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (output.length > 2000) output.splice(0, output.length - 2000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  const exited = new Promise<void>((r) => child.once('exit', () => (process.off('exit', reap), r())));

  const runtime = (command: string) =>
    new Promise<string>((resolve, reject) => {
      let answer = '';
      const s = connect(statsSocket, () => s.end(`${command}\n`));
      s.on('data', (d: Buffer) => (answer += d.toString('utf8')));
      s.on('end', () => resolve(answer));
      s.on('error', reject);
    });
  const servers = async () => {
    const [header, ...rows] = (await runtime('show stat')).split('\n').filter(Boolean);
    const cols = (header ?? '').replace(/^# /, '').split(',');
    const [px, sv, st] = ['pxname', 'svname', 'status'].map((c) => cols.indexOf(c));
    const out = new Map<string, ServerStatus>();
    for (const r of rows) {
      const f = r.split(',');
      if (f[px as number] === 'sluice_gateways' && !['FRONTEND', 'BACKEND'].includes(f[sv as number] ?? '')) out.set(f[sv as number] as string, f[st as number] as string);
    }
    return out;
  };
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}:\n${output.join('\n')}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
    });
    if (up && (await servers().then((m) => m.size > 0, () => false))) break;
    if (Date.now() - started > 10_000) throw new Error(`haproxy did not start:\n${output.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    process: child,
    output,
    runtime,
    servers,
    async waitFor(server, status, timeoutMs = 15_000) {
      const t0 = Date.now();
      for (;;) {
        const now = (await servers()).get(server);
        if (now === status) return;
        if (Date.now() - t0 > timeoutMs) throw new Error(`haproxy: ${server} is ${now}, not ${status}, after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
