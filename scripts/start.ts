/**
 * `npm start`: the cashier app on the embedded default. Builds the renderer if needed, starts the
 * embedded stack (sandbox, relay, terminal services) in this process, then:
 * - Electron binary present → builds the main/preload bundles and launches Electron, passing the
 *   relay's address and the terminal tokens in its environment (never on its command line);
 *   Electron itself contains the terminal only;
 * - otherwise opens the web host's page in Chromium (app mode, fresh private profile) when a
 *   display exists, or prints a start link. It always says which it did.
 * One copy per data folder: a second start exits at once, saying so.
 * Data folder: $POS_DATA_DIR, default ./.pos-data (created with `sandbox init` on first run).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { defaultDataDir, startEmbedded, type Embedded } from '../shared/terminal/embedded';
import { AlreadyRunningError } from '../shared/terminal/instance-lock';
import { installProcessPolicy } from '../shared/terminal/process-policy';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rendererDir = join(root, 'dist', 'renderer');
const say = (msg: string) => console.log(`[start] ${msg}`);

/** Cleanup run on signals and after a fatal error; set once something needs undoing. */
let shutdown: () => Promise<void> = async () => undefined;
let stopping = false;
installProcessPolicy({ name: 'start', shutdown: () => shutdown() });
// Installed first: a signal before its handler exists kills the process on the spot.
const onSignal = () => {
  if (stopping) return;
  stopping = true;
  say('stopping');
  void shutdown().finally(() => process.exit(0));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`[start] ${cmd} ${args.join(' ')} failed`);
    process.exit(r.status ?? 1);
  }
}

/** The Electron binary's path, or null when the package is installed without its binary. */
function electronBinary(): string | null {
  try {
    const p = createRequire(import.meta.url)('electron') as unknown;
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

function chromium(): string | null {
  for (const c of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) {
    if (c && existsSync(c)) return c;
  }
  return null;
}

/** Resolves when `child` has exited; asks with SIGTERM, insists with SIGKILL after `ms`. */
function stopChild(child: ChildProcess, ms = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => { clearTimeout(t); ok(); });
    child.kill('SIGTERM');
  });
}

/** Chromium may still flush files into its profile as it exits: remove with retries (ENOTEMPTY). */
function removeProfile(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch (err) {
    say(`could not remove the browser profile ${dir}: ${(err as Error).message}`);
  }
}

/**
 * Chromium's flags for a counter: no first-run or sync prompts, Chinese UI and date formats,
 * no translate bar. As root (containers, kiosks) Chromium refuses its sandbox: only then turn it
 * off, with --test-type so no "unsupported command-line flag" bar pushes the screen down.
 */
function chromiumArgs(appUrl: string, profile: string, asRoot: boolean): string[] {
  const args = [
    `--app=${appUrl}`, `--user-data-dir=${profile}`, '--no-first-run', '--no-default-browser-check', '--disable-sync',
    '--disable-extensions', '--window-size=1280,800', '--lang=zh-CN', '--accept-lang=zh-CN,zh',
    '--disable-features=Translate',
  ];
  if (asRoot) args.push('--no-sandbox', '--test-type');
  return args;
}

async function startStack(shell: 'electron' | 'web'): Promise<Embedded> {
  const dataDir = defaultDataDir();
  try {
    const e = await startEmbedded({ dataDir, rendererDir, webHost: shell === 'web', shell });
    say(`${e.created ? 'created' : 'reusing'} data folder ${dataDir}`);
    return e;
  } catch (err) {
    if (err instanceof AlreadyRunningError) {
      console.error(`[start] not started: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}

if (!existsSync(join(rendererDir, 'index.html'))) {
  say('building the renderer (dist/renderer is missing)');
  run(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'renderer/vite.config.ts']);
}

const electron = process.env.POS_NO_ELECTRON ? null : electronBinary();
if (electron) {
  run(process.execPath, ['--import', 'tsx', join(root, 'scripts/build-electron.ts')]);
  // The stack runs here in Node (better-sqlite3 is built for Node); Electron runs the terminal
  // services and the window, and reaches the relay over loopback.
  const e = await startStack('electron');
  shutdown = () => e.close();
  say(`launching Electron (${electron}); sandbox ${e.sandboxUrl}, relay ${e.relayUrl}`);
  // Electron keeps its own services: these would print the same receipts twice.
  await e.services.close();
  const child = spawn(electron, [join(root, 'dist/electron/main.cjs')], {
    stdio: 'inherit',
    // The environment is readable by this user only (unlike the command line).
    env: {
      ...process.env, POS_RENDERER_DIR: rendererDir, POS_RELAY_URL: e.relayUrl, POS_TERMINAL_TOKEN: e.cashierToken,
      POS_MANAGER_TOKEN: e.managerToken, POS_SANDBOX_URL: e.sandboxUrl,
    },
  });
  shutdown = async () => {
    await stopChild(child);
    await e.close();
  };
  child.on('exit', (code) => {
    if (!stopping) void e.close().finally(() => process.exit(code ?? 0));
  });
} else {
  const e = await startStack('web');
  const host = e.webHost!;
  say(`sandbox ${e.sandboxUrl} (phone page ${e.sandboxUrl}/sandbox), relay ${e.relayUrl}`);
  const browser = chromium();
  const display = !!(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
  let profile: string | null = null;
  let browserChild: ChildProcess | null = null;
  host.onSession(() => say('the app is open in the browser'));
  if (browser && display) {
    profile = mkdtempSync(join(tmpdir(), 'pos-chromium-')); // 0700
    // The single-use start link goes in a file of the private profile, not on Chromium's
    // command line (which any local user can read): the page forwards to it at once.
    const launch = join(profile, 'launch.html');
    const link = host.launchUrl().replace(/&/g, '&amp;').replace(/"/g, '&quot;');
    writeFileSync(launch, `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer"><meta http-equiv="refresh" content="0;url=${link}"><title>收银</title>\n`, { mode: 0o600 });
    say(`Electron binary not present: opening the app in Chromium (${browser}, profile ${profile})`);
    const asRoot = process.getuid?.() === 0;
    const child = spawn(browser, chromiumArgs(pathToFileURL(launch).href, profile, asRoot), {
      stdio: ['ignore', 'ignore', 'pipe'],
      // Chinese UI and date formats on Linux, whatever the machine's locale.
      env: { ...process.env, LANGUAGE: 'zh_CN:zh' },
    });
    browserChild = child;
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    child.on('exit', (code) => {
      if (stopping) return;
      if (code) say(`Chromium exited with ${code}: ${err.trim().split('\n').pop() ?? ''}`);
      say(`Chromium closed; the app keeps running at ${host.url} (Ctrl+C to stop)`);
      if (profile) removeProfile(profile);
      profile = null;
    });
  } else {
    say(`Electron binary not present and ${browser ? 'no display' : 'no Chromium'}: open this single-use start link in a browser${process.stdin.isTTY ? ' (press Enter for another one)' : ''}:`);
  }
  console.log(browserChild ? host.url : host.launchUrl());
  // The customer display (副屏) of a browser-only counter: its own single-use link, which reaches
  // only the customer view (no settings, no orders, no printing). Said after the cashier's link,
  // which stays right under the line that announces it.
  say(`customer display (副屏): open this single-use link on the screen facing the customer: ${host.customerLaunchUrl()}`);
  if (!browserChild && process.stdin.isTTY) {
    process.stdin.on('data', () => console.log(host.launchUrl()));
  }
  shutdown = async () => {
    // The browser first, and wait for it: its profile is removed only once nothing writes to it.
    if (browserChild) await stopChild(browserChild);
    await e.close();
    if (profile) removeProfile(profile);
  };
}
