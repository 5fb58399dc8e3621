/**
 * Electron main process: a thin shell. It starts the terminal services (the embedded default, or a
 * configured remote relay), serves the built renderer from `app://pos/`, and wires IPC. Security
 * checklist: sandboxed renderer with context isolation and no Node, strict CSP on every response,
 * navigation/new windows denied, permissions denied, every IPC sender checked (electron/ipc.ts).
 */
import { app, BrowserWindow, ipcMain, protocol, session, shell } from 'electron';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { startTerminalServices, type TerminalServices } from '../shared/terminal/services';
import { CSP } from '../shared/terminal/web-host';
import { APP_ORIGIN, forwardEvents, registerIpcHandlers } from './ipc';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.json': 'application/json', '.woff2': 'font/woff2', '.ico': 'image/x-icon',
};

protocol.registerSchemesAsPrivileged([{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
app.enableSandbox();

const rendererDir = resolve(process.env.POS_RENDERER_DIR ?? join(__dirname, '..', 'renderer'));
let services: TerminalServices | null = null;
let stop: (() => Promise<void>) | null = null;
let sandboxOrigin: string | null = null;

/**
 * Three ways to run, in order: `npm start` already runs the embedded stack in Node and passes its
 * relay via POS_RELAY_URL/POS_TERMINAL_TOKEN/POS_MANAGER_TOKEN/POS_SANDBOX_URL (so Electron never
 * loads better-sqlite3 built for Node); a relay configured in `<userData>/settings.json` (real
 * use); otherwise the embedded default in this process (packaged app, better-sqlite3 rebuilt).
 */
async function startServices(): Promise<void> {
  const userData = app.getPath('userData');
  const settingsPath = join(userData, 'settings.json');
  const env = process.env;
  if (env.POS_RELAY_URL) {
    services = await startTerminalServices({
      userDataDir: join(userData, 'launched'), shell: 'electron', sandboxUrl: env.POS_SANDBOX_URL || null,
      settingsOverrides: { relay_url: env.POS_RELAY_URL, terminal_token: env.POS_TERMINAL_TOKEN ?? '', manager_token: env.POS_MANAGER_TOKEN ?? '' },
    });
    sandboxOrigin = env.POS_SANDBOX_URL ? new URL(env.POS_SANDBOX_URL).origin : null;
    stop = () => services!.close();
    return;
  }
  let remote = false;
  try {
    remote = !!(JSON.parse(readFileSync(settingsPath, 'utf8')) as { relay_url?: string }).relay_url;
  } catch {
    remote = false;
  }
  if (remote) {
    services = await startTerminalServices({ settingsPath, userDataDir: userData, shell: 'electron' });
    stop = () => services!.close();
    return;
  }
  // Loaded lazily: the relay's native SQLite module is only needed on the embedded default.
  const { startEmbedded } = await import('../shared/terminal/embedded');
  const e = await startEmbedded({ dataDir: env.POS_DATA_DIR || join(userData, 'embedded'), webHost: false, shell: 'electron', rendererDir });
  services = e.services;
  sandboxOrigin = new URL(e.sandboxUrl).origin;
  stop = () => e.close();
}

function serveApp(): void {
  protocol.handle('app', async (req) => {
    const url = new URL(req.url);
    if (url.host !== 'pos') return new Response('not found', { status: 404 });
    let file = normalize(join(rendererDir, decodeURIComponent(url.pathname)));
    if (file !== rendererDir && !file.startsWith(rendererDir + sep)) return new Response('not found', { status: 404 });
    if (!existsSync(file) || !extname(file)) file = join(rendererDir, 'index.html');
    try {
      const body = await readFile(file);
      return new Response(body, { headers: { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-security-policy': CSP } });
    } catch {
      return new Response('renderer not built: run npm run build', { status: 404 });
    }
  });
}

function harden(): void {
  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_wc, _perm, cb) => cb(false));
  ses.setPermissionCheckHandler(() => false);
  ses.webRequest.onHeadersReceived((details, cb) => {
    cb({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } });
  });
  app.on('web-contents-created', (_e, contents) => {
    contents.on('will-navigate', (ev, url) => {
      if (!url.startsWith(`${APP_ORIGIN}/`)) ev.preventDefault();
    });
    contents.on('will-attach-webview', (ev) => ev.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      // The sandbox's phone page ("simulate the customer's scan") opens in the system browser;
      // every other window is denied.
      if (sandboxOrigin && url.startsWith(`${sandboxOrigin}/sandbox`)) void shell.openExternal(url);
      return { action: 'deny' };
    });
  });
}

async function createWindow(): Promise<void> {
  const win = new BrowserWindow({
    width: 1280,
    height: 800,
    show: false,
    webPreferences: {
      preload: join(__dirname, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
      disableBlinkFeatures: 'Auxclick',
    },
  });
  const offEvents = forwardEvents(services!, win.webContents);
  win.on('closed', offEvents);
  win.once('ready-to-show', () => win.show());
  await win.loadURL(`${APP_ORIGIN}/index.html`);
}

app.whenReady().then(async () => {
  harden();
  serveApp();
  await startServices();
  registerIpcHandlers(ipcMain, services!);
  await createWindow();
}).catch((err: unknown) => {
  console.error(`cannot start: ${(err as Error).message}`);
  app.exit(1);
});

app.on('window-all-closed', () => {
  void (stop?.() ?? Promise.resolve()).finally(() => app.quit());
});
