/**
 * `npm start`: the cashier app on the embedded default. Builds the renderer if needed, then:
 * - Electron binary present → builds the main/preload bundles and launches Electron (which starts
 *   the embedded stack in its main process);
 * - otherwise starts the embedded stack here and opens the web host's page in Chromium (app mode,
 *   fresh profile) when a display exists, or prints the URL. It always says which it did.
 * Data folder: $POS_DATA_DIR, default ./.pos-data (created with `sandbox init` on first run).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultDataDir, startEmbedded } from '../shared/terminal/embedded';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rendererDir = join(root, 'dist', 'renderer');
const say = (msg: string) => console.log(`[start] ${msg}`);

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

if (!existsSync(join(rendererDir, 'index.html'))) {
  say('building the renderer (dist/renderer is missing)');
  run(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'renderer/vite.config.ts']);
}

const dataDir = defaultDataDir();
const electron = process.env.POS_NO_ELECTRON ? null : electronBinary();
if (electron) {
  run(process.execPath, ['--import', 'tsx', join(root, 'scripts/build-electron.ts')]);
  // The stack runs here in Node (better-sqlite3 is built for Node); Electron runs the terminal
  // services and the window, and reaches the relay over loopback.
  const e = await startEmbedded({ dataDir, rendererDir, webHost: false, shell: 'electron' });
  say(`${e.created ? 'created' : 'reusing'} data folder ${dataDir}`);
  say(`launching Electron (${electron}); sandbox ${e.sandboxUrl}, relay ${e.relayUrl}`);
  // Electron keeps its own services: these would print the same receipts twice.
  await e.services.close();
  const child = spawn(electron, [join(root, 'dist/electron/main.cjs')], {
    stdio: 'inherit',
    env: {
      ...process.env, POS_RENDERER_DIR: rendererDir, POS_RELAY_URL: e.relayUrl, POS_TERMINAL_TOKEN: e.cashierToken,
      POS_MANAGER_TOKEN: e.managerToken, POS_SANDBOX_URL: e.sandboxUrl,
    },
  });
  child.on('exit', (code) => void e.close().finally(() => process.exit(code ?? 0)));
} else {
  const e = await startEmbedded({ dataDir, rendererDir, shell: 'web' });
  say(`${e.created ? 'created' : 'reusing'} data folder ${dataDir}`);
  say(`sandbox ${e.sandboxUrl} (phone page ${e.sandboxUrl}/sandbox), relay ${e.relayUrl}`);
  const browser = chromium();
  const display = !!(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
  let profile: string | null = null;
  let browserChild: ReturnType<typeof spawn> | null = null;
  if (browser && display) {
    profile = mkdtempSync(join(tmpdir(), 'pos-chromium-'));
    say(`Electron binary not present: opening the app in Chromium (${browser})`);
    const args = [
      `--app=${e.webUrl}`, `--user-data-dir=${profile}`, '--no-first-run', '--no-default-browser-check', '--disable-sync',
      '--disable-extensions', '--window-size=1280,800',
    ];
    // Chromium refuses to run as root with its sandbox (containers, kiosks): only then turn it off.
    if (process.getuid?.() === 0) args.push('--no-sandbox');
    const child = spawn(browser, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    browserChild = child;
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    child.on('exit', (code) => {
      if (code) say(`Chromium exited with ${code}: ${err.trim().split('\n').pop() ?? ''}`);
      say('Chromium closed; the app keeps running at the URL below (Ctrl+C to stop)');
    });
  } else {
    say(`Electron binary not present and ${browser ? 'no display' : 'no Chromium'}: open this URL in a browser:`);
  }
  console.log(e.webUrl);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('stopping');
    browserChild?.kill();
    await e.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
