import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { grant } from '../access/grant-store.ts';
import { migrate } from '../db/migrate.ts';
import { createCa, issueCert, type CertAndKey } from '../tls/certificates.ts';

/** A throwaway CA, server certificate (files, for the gateway) and one partner certificate (for clients). */
export async function benchCerts(): Promise<{ dir: string; ca: CertAndKey; client: CertAndKey }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-'));
  const ca = await createCa();
  const server = await issueCert({ ca, cn: 'localhost', kind: 'server', sans: ['localhost', '127.0.0.1'] });
  const client = await issueCert({ ca, cn: 'bench', kind: 'client' });
  await writeFile(`${dir}/ca.crt`, ca.certPem);
  await writeFile(`${dir}/server.crt`, server.certPem);
  await writeFile(`${dir}/server.key`, server.keyPem);
  return { dir, ca, client };
}

/**
 * Runs the gateway (`src/cli/serve.ts`) in its own process, so the benchmark's clients do not share its event
 * loop, and resolves once its port accepts connections. `stop()` sends SIGTERM and waits for the exit.
 */
export async function startGatewayProcess(
  databaseUrl: string,
  certDir: string,
  env: Record<string, string> = {},
  opts: { grantAll?: readonly string[]; port?: number; opsPort?: number; startTimeoutMs?: number } = {},
): Promise<{ port: number; opsPort: number; process: ChildProcess; stop(): Promise<void> }> {
  // Fixed ports restart a gateway where a load balancer expects it; free ones otherwise.
  const [port, opsPort] = [opts.port ?? (await freePort()), opts.opsPort ?? (await freePort())];
  // BENCH_GATEWAY_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=var/prof", profiles the gateway alone.
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // The benchmark partner ('bench') may read every SLU; rate limits would measure themselves, so they are off.
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  db.on('error', () => undefined); // a client closing while the server restarts: nothing to do
  try {
    await migrate(db);
    for (const p of opts.grantAll ?? ['bench']) await grant(db, p, null);
  } finally {
    await db.end();
  }
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', fileURLToPath(new URL('../cli/serve.ts', import.meta.url))], {
    env: {
      ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: '127.0.0.1', TLS_CA: `${certDir}/ca.crt`,
      TLS_CERT: `${certDir}/server.crt`, TLS_KEY: `${certDir}/server.key`, TLS_DEV_CERTS: 'false', SLUICE_BANNER: '0', OPS_PORT: String(opsPort), REST_RATE_LIMIT: '0', ...env,
    },
    // BENCH_GATEWAY_STDOUT=inherit shows the gateway's stdout (its log, or --trace-gc from the node args above).
    stdio: ['ignore', process.env.BENCH_GATEWAY_STDOUT === 'inherit' ? 'inherit' : 'ignore', 'inherit'],
  });
  // Never leave a gateway behind when the benchmark or test that started it dies.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  // The gateway listens once its latest-reading store is filled: a scan over every SLU and partition (seconds on
  // bench:rest's 100M database), so benchmarks on big databases wait longer than the default 30 s.
  const startBy = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > startBy || child.exitCode !== null) throw new Error(child.exitCode !== null ? `gateway exited (code ${child.exitCode}) before listening` : 'gateway did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  // With WORKERS > 1 the port accepts once the first worker listens: wait until the primary says all are ready.
  if (Number(env.WORKERS ?? 1) > 1) {
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (i > 600 || child.exitCode !== null) throw new Error('gateway workers did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    port,
    opsPort,
    process: child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return; // already gone (e.g. killed by a test)
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
