/**
 * The embedded default (`npm start` with no configuration): one data folder holding the sandbox's
 * merchant and simulator state, the relay database, the terminal tokens and the terminal's own
 * settings and print jobs. Sandbox, relay, terminal services and web host all run in this process
 * on loopback. A later start reuses the folder (same merchant keys, orders, tokens).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addTerminal, loadRelayConfig, startRelay } from '../relay/index';
import { initSandbox, startSandbox } from '../sandbox/index';
import { startTerminalServices, type TerminalServices, type TerminalServicesOptions } from './services';
import { acquireInstanceLock } from './instance-lock';
import { ensurePrivateDir, writeJsonAtomic, type StoredSettings } from './settings';
import { startWebHost, type WebHost } from './web-host';

/** The repository root (lazy: in the Electron bundle import.meta is unavailable and unused). */
export const repoRoot = (): string => resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Default data folder: `$POS_DATA_DIR`, else `.pos-data/` in the working directory (git-ignored). */
export const defaultDataDir = (): string => resolve(process.env.POS_DATA_DIR || '.pos-data');
export const defaultRendererDir = (): string => join(repoRoot(), 'dist', 'renderer');

export interface EmbeddedOptions {
  dataDir: string;
  /** Printer setting forced at start (tests: a capture server); default: keep the stored one (preview). */
  printer?: string;
  closeMinAgeSeconds?: number;
  timeScale?: number;
  queryAfterSeconds?: number;
  rendererDir?: string;
  /** Start the loopback web host (default true; Electron may load from it too). */
  webHost?: boolean;
  shell?: 'electron' | 'web';
  /** Relay log level (pino); default `warn`. */
  relayLogLevel?: string;
  services?: Partial<TerminalServicesOptions>;
}

export interface Embedded {
  dataDir: string;
  sandboxUrl: string;
  relayUrl: string;
  /** The web host's address (`http://127.0.0.1:PORT/`, no credential); start links: `webHost.launchUrl()`. */
  webUrl: string | null;
  webHost: WebHost | null;
  cashierToken: string;
  managerToken: string;
  services: TerminalServices;
  /** true when this start created the data folder (sandbox init). */
  created: boolean;
  close(): Promise<void>;
}

interface EmbeddedState {
  cashier_token: string;
  manager_token: string;
  relay_port?: number;
  sandbox_port?: number;
}

/** A free loopback port, preferring `wanted` (so a restart keeps notify URLs of older orders valid). */
async function freePort(wanted?: number): Promise<number> {
  const tryPort = (p: number) => new Promise<number | null>((ok) => {
    const s = createServer();
    s.once('error', () => ok(null));
    s.listen(p, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
  if (wanted) {
    const p = await tryPort(wanted);
    if (p) return p;
  }
  return (await tryPort(0))!;
}

export async function startEmbedded(opts: EmbeddedOptions): Promise<Embedded> {
  const dataDir = resolve(opts.dataDir);
  // Holds the merchant's keys, the relay database and the terminal tokens: the user's only.
  ensurePrivateDir(dataDir);
  // Before anything opens relay.db or the print jobs: one running copy per data folder.
  const lock = acquireInstanceLock(dataDir);
  try {
    return await startLocked(opts, dataDir, lock.release);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(opts: EmbeddedOptions, dataDir: string, releaseLock: () => void): Promise<Embedded> {
  const statePath = join(dataDir, 'embedded.json');
  const merchantDir = join(dataDir, 'merchant');
  const created = !existsSync(join(merchantDir, 'merchant.json'));
  if (created) await initSandbox(dataDir);
  // The folders the sandbox's init created (merchant keys) are private too.
  for (const d of readdirSync(dataDir, { withFileTypes: true })) if (d.isDirectory()) ensurePrivateDir(join(dataDir, d.name));
  let state: Partial<EmbeddedState> = {};
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as EmbeddedState;
  } catch {
    state = {};
  }

  const cleanups: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
    releaseLock(); // last: nothing of ours has the database or the job file open any more
  };
  try {
    // Reuse last run's ports when free (notify URLs of older orders stay valid), else any port.
    const sandboxOpts = { dir: dataDir, timeScale: opts.timeScale, closeMinAgeSeconds: opts.closeMinAgeSeconds };
    const sandbox = await startSandbox({ ...sandboxOpts, port: state.sandbox_port ?? 0 })
      .catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EADDRINUSE' || !state.sandbox_port) throw err;
        return startSandbox({ ...sandboxOpts, port: 0 });
      });
    cleanups.push(() => sandbox.close());

    const relayEnv = (port: number): Record<string, string> => {
      const env: Record<string, string> = {
        WECHATPAY_CREDENTIALS_DIR: merchantDir,
        WECHATPAY_BASE_URL: sandbox.url,
        // The relay must know its own URL (notify_url) before listening: pick the port first.
        RELAY_PUBLIC_URL: `http://127.0.0.1:${port}`,
        RELAY_HOST: '127.0.0.1',
        RELAY_PORT: String(port),
        RELAY_DB: join(dataDir, 'relay.db'),
        RELAY_LOG_LEVEL: opts.relayLogLevel ?? 'warn',
      };
      if (opts.closeMinAgeSeconds !== undefined) env.RELAY_CLOSE_MIN_AGE_SECONDS = String(opts.closeMinAgeSeconds);
      if (opts.queryAfterSeconds !== undefined) env.RELAY_QUERY_AFTER_SECONDS = String(opts.queryAfterSeconds);
      return env;
    };
    let relayPort = await freePort(state.relay_port);
    let config = loadRelayConfig(relayEnv(relayPort));

    // Terminals are created once; their tokens (only stored hashed in the relay) live here.
    // A removed relay.db forgets the terminals: issue new tokens then too.
    if (!state.cashier_token || !state.manager_token || !existsSync(config.dbPath)) {
      // relay.db may still hold these names while their tokens are lost (embedded.json deleted, or a
      // first start interrupted before it was written): take the next free name, never fail to start.
      const add = async (base: string, role: 'cashier' | 'manager'): Promise<string> => {
        for (let i = 1; ; i++) {
          try {
            return await addTerminal(config, i === 1 ? base : `${base}-${i}`, role);
          } catch (err) {
            if ((err as { code?: string }).code !== 'TERMINAL_EXISTS' || i >= 100) throw err;
          }
        }
      };
      state.cashier_token = await add('cashier-1', 'cashier');
      state.manager_token = await add('manager', 'manager');
      // Kept at once: tokens exist only here (the relay stores hashes).
      writeJsonAtomic(statePath, state);
    }
    let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
    for (let attempt = 0; !relay; attempt++) {
      try {
        relay = await startRelay(config);
      } catch (err) {
        // Another process took the port between the probe and the listen: try another one.
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 3) throw err;
        relayPort = await freePort();
        config = loadRelayConfig(relayEnv(relayPort));
      }
    }
    const relayHandle = relay;
    cleanups.push(() => relayHandle.close());
    state.relay_port = Number(new URL(relayHandle.url).port) || relayPort;
    state.sandbox_port = Number(new URL(sandbox.url).port) || undefined;
    writeJsonAtomic(statePath, state);

    const overrides: Partial<StoredSettings> = {
      relay_url: relayHandle.url, terminal_token: state.cashier_token!, manager_token: state.manager_token!,
    };
    if (opts.printer) overrides.printer = opts.printer;
    const services = await startTerminalServices({
      userDataDir: join(dataDir, 'terminal'),
      settingsOverrides: overrides,
      sandboxUrl: sandbox.url,
      shell: opts.shell ?? 'web',
      ...opts.services,
    });
    cleanups.push(() => services.close());

    let webHost: WebHost | null = null;
    if (opts.webHost !== false) {
      webHost = await startWebHost({ services, rendererDir: opts.rendererDir ?? defaultRendererDir() });
      cleanups.push(() => webHost!.close());
    }
    return {
      dataDir, sandboxUrl: sandbox.url, relayUrl: relayHandle.url, webUrl: webHost?.url ?? null, webHost,
      cashierToken: state.cashier_token!, managerToken: state.manager_token!, services, created, close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
