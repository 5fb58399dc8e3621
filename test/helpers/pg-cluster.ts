/**
 * A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a fresh temporary folder,
 * the server on 127.0.0.1 and a free port, unix sockets inside that folder, one database created.
 * stop() shuts it down (pg_ctl stop -m fast) and removes the folder.
 *
 * PostgreSQL refuses to run as root, and tests here run as root: initdb and postgres then run as
 * the `postgres` OS user (Debian's package creates it) through runuser, in a folder chowned to it.
 * When PostgreSQL is not installed this throws a PgClusterError naming what is missing: tests that
 * need it fail, never skip (CI installs Debian's `postgresql` package, see .ci/run).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export class PgClusterError extends Error {
  readonly code = 'PG_CLUSTER';
  constructor(message: string) {
    super(message);
    this.name = 'PgClusterError';
  }
}

export interface PgCluster {
  /** postgres://relay@127.0.0.1:PORT/DATABASE (trust authentication, loopback only). */
  url: string;
  port: number;
  /** URL of another database on the same server (created on demand by createDatabase). */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export interface PgClusterOptions {
  database?: string;
  /**
   * Durable commits (fsync on), as production runs. Off by default: tests assert behaviour, not
   * power-loss durability, and fsync on a shared 2-core machine only makes them slow.
   */
  durable?: boolean;
}

const SUPERUSER = 'relay';

/** The newest /usr/lib/postgresql/N/bin holding initdb, pg_ctl and postgres. */
export function findPgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(bin, b)))) return bin;
  }
  throw new PgClusterError(`PostgreSQL is not installed: no initdb/pg_ctl/postgres under ${root}/*/bin (install Debian's "postgresql" package; .ci/run does)`);
}

/** uid/gid of the `postgres` OS user when we are root (PostgreSQL refuses root), else null. */
function runAsUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new PgClusterError('running as root but there is no "postgres" OS user to run PostgreSQL as (Debian\'s postgresql package creates it)');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function command(asUser: boolean, bin: string, args: string[]): [string, string[]] {
  return asUser ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

function run(asUser: boolean, bin: string, args: string[]): void {
  const [cmd, argv] = command(asUser, bin, args);
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new PgClusterError(`${bin} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
}

/** A port free right now. PostgreSQL cannot bind port 0, so the start retries when another process takes it first. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function canConnect(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

type StartOutcome = { ok: true } | { ok: false; portTaken: boolean; log: string };

/**
 * Starts postgres on `port` and resolves once a connection succeeds (polled), or when the
 * server exits first (then with its log, to tell a taken port from any other failure).
 */
async function startServer(asUser: boolean, bin: string, dataDir: string, sockDir: string, port: number, durable: boolean, logFile: string): Promise<{ outcome: StartOutcome; child: ChildProcess }> {
  const args = ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${sockDir}`, '-c', 'max_connections=200'];
  if (!durable) args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const [cmd, argv] = command(asUser, join(bin, 'postgres'), args);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
    writeFileSync(logFile, log);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  while (!exited && Date.now() < deadline) {
    if (await canConnect(url)) return { outcome: { ok: true }, child };
    // Poll again soon, or at once if the server exits meanwhile.
    await Promise.race([exit, new Promise((r) => setTimeout(r, 50))]);
  }
  if (!exited) {
    child.kill('SIGKILL');
    await exit;
    return { outcome: { ok: false, portTaken: false, log: log + '\n(no connection within 30 s)' }, child };
  }
  return { outcome: { ok: false, portTaken: /Address already in use|could not create any TCP\/IP sockets/i.test(log), log }, child };
}

export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  const owner = runAsUser();
  const asUser = owner !== null;
  const dir = mkdtempSync(join(tmpdir(), 'pgc-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  let child: ChildProcess | undefined;
  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    run(asUser, join(bin, 'initdb'), ['-D', dataDir, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    // Loopback TCP and our own socket folder only; nothing else may connect.
    writeFileSync(join(dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    if (owner) chownSync(join(dataDir, 'pg_hba.conf'), owner.uid, owner.gid);
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const started = await startServer(asUser, bin, dataDir, dir, port, opts.durable ?? false, logFile);
      child = started.child;
      if (started.outcome.ok) break;
      if (!started.outcome.portTaken || attempt >= 5) throw new PgClusterError(`postgres did not start: ${started.outcome.log.trim().slice(-2000)}`);
    }
    const urlFor = (database: string) => `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`;
    const createDatabase = async (name: string): Promise<string> => {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new PgClusterError(`database name ${JSON.stringify(name)}: lower-case letters, digits and _ only`);
      const c = new pg.Client({ connectionString: urlFor('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return urlFor(name);
    };
    const database = opts.database ?? 'relay_test';
    const url = await createDatabase(database);
    const running = child!;
    let stopped: Promise<void> | undefined;
    // A test process that ends without stop() (a crash, an aborted run) must not leave a server
    // behind: on exit only synchronous work is possible, so an immediate stop and the folder removed.
    const onExit = () => {
      if (running.exitCode === null && running.signalCode === null) {
        const [cmd, argv] = command(asUser, join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w']);
        spawnSync(cmd, argv);
      }
      rmSync(dir, { recursive: true, force: true });
    };
    process.once('exit', onExit);
    // A test process killed outright (vitest ending a worker with a signal, SIGKILL) runs no exit
    // hook: a detached watchdog stops the server and removes the folder once this process is gone.
    const [ctl, ctlArgs] = command(asUser, join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w']);
    const quote = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
    const watchdog = spawn('sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${[ctl, ...ctlArgs].map(quote).join(' ')} >/dev/null 2>&1; rm -rf ${quote(dir)}`], { detached: true, stdio: 'ignore' });
    watchdog.unref();
    const stop = () =>
      (stopped ??= (async () => {
        process.removeListener('exit', onExit);
        watchdog.kill('SIGKILL');
        if (running.exitCode === null && running.signalCode === null) {
          const exited = new Promise<void>((r) => running.once('exit', () => r()));
          try {
            run(asUser, join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w']);
          } catch {
            running.kill('SIGKILL');
          }
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
      })());
    return { url, port, urlFor, createDatabase, stop };
  } catch (err) {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child!.once('exit', () => r()));
      // Through pg_ctl: killing runuser would leave the postgres it started running.
      try {
        run(asUser, join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w']);
      } catch {
        child.kill('SIGKILL');
      }
      await exited;
    }
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    rmSync(dir, { recursive: true, force: true });
    if (err instanceof PgClusterError) throw err;
    throw new PgClusterError(`${(err as Error).message}${log ? `\n${log.slice(-2000)}` : ''}`);
  }
}
