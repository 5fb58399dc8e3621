/**
 * Electron main process: a thin shell over the terminal services, which reach a relay over HTTP.
 * It contains the terminal only: never the relay (the merchant-key holder) nor the sandbox; the
 * embedded default runs in `npm start`'s own process (scripts/start.ts), which passes its relay
 * here in the environment. It serves the built renderer from `app://pos/` and wires IPC.
 * Security checklist: sandboxed renderer with context isolation and no Node, strict CSP on every
 * response, navigation/new windows denied, permissions denied, every IPC sender checked
 * (electron/ipc.ts). One instance: a second start focuses the first one's window.
 * Customer display: a second window (app://pos/customer.html) with its own preload that exposes
 * the customer view only; on the second screen when there is one (setting `customer_display`:
 * `auto` = only then, `window` = also without one, `off` = never).
 */
import { app, BrowserWindow, ipcMain, protocol, screen, session, shell } from 'electron';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { installProcessPolicy } from '../shared/terminal/process-policy';
import { startTerminalServices, type TerminalServices } from '../shared/terminal/services';
import { CSP } from '../shared/terminal/web-host';
import { APP_ORIGIN, CUSTOMER_PAGE, forwardCustomerView, forwardEvents, registerCustomerIpc, registerIpcHandlers } from './ipc';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.json': 'application/json', '.woff2': 'font/woff2', '.ico': 'image/x-icon',
};

protocol.registerSchemesAsPrivileged([{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
app.enableSandbox();

const rendererDir = resolve(process.env.POS_RENDERER_DIR ?? join(__dirname, '..', 'renderer'));
let services: TerminalServices | null = null;
let sandboxOrigin: string | null = null;
let mainWindow: BrowserWindow | null = null;
let customerWindow: BrowserWindow | null = null;
let stopping: Promise<void> | null = null;

/** Stops the services once (their print queue finishes the job it is sending). */
const stop = (): Promise<void> => {
  stopping ??= services ? services.close().catch(() => undefined) : Promise.resolve();
  return stopping;
};

installProcessPolicy({ name: 'electron', shutdown: stop, exit: (code) => app.exit(code) });

/**
 * Two ways to run: `npm start` runs the embedded stack in its own Node process and passes its
 * relay in POS_RELAY_URL/POS_TERMINAL_TOKEN/POS_MANAGER_TOKEN/POS_SANDBOX_URL (kept in a separate
 * folder so a demo never overwrites the counter's settings); otherwise the relay configured in
 * `<userData>/settings.json` (real use; unconfigured, the app opens on its Settings screen).
 */
async function startServices(): Promise<void> {
  const userData = app.getPath('userData');
  const env = process.env;
  if (env.POS_RELAY_URL) {
    services = await startTerminalServices({
      userDataDir: join(userData, 'launched'), shell: 'electron', sandboxUrl: env.POS_SANDBOX_URL || null,
      settingsOverrides: { relay_url: env.POS_RELAY_URL, terminal_token: env.POS_TERMINAL_TOKEN ?? '', manager_token: env.POS_MANAGER_TOKEN ?? '' },
    });
    sandboxOrigin = env.POS_SANDBOX_URL ? new URL(env.POS_SANDBOX_URL).origin : null;
    return;
  }
  services = await startTerminalServices({ userDataDir: userData, shell: 'electron' });
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


/**
 * Opens the customer display: full screen on a display other than the primary one, or (setting
 * `customer_display: "window"` without a second screen) an ordinary window. Nothing otherwise.
 */
async function createCustomerWindow(): Promise<void> {
  const mode = (await services!.getSettings()).customer_display;
  if (mode === 'off') return;
  const primary = screen.getPrimaryDisplay();
  const second = screen.getAllDisplays().find((d) => d.id !== primary.id);
  if (!second && mode !== 'window') return;
  const win = new BrowserWindow({
    ...(second ? { ...second.bounds, fullscreen: true } : { width: 800, height: 600 }),
    show: false,
    title: '顾客显示 Customer display',
    // Written out in full in each window (not shared): the security checker reads literals.
    webPreferences: {
      preload: join(__dirname, 'customer-preload.cjs'),
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
  customerWindow = win;
  const off = forwardCustomerView(services!, win.webContents);
  win.on('closed', () => {
    off();
    if (customerWindow === win) customerWindow = null;
  });
  win.once('ready-to-show', () => win.showInactive());
  await win.loadURL(`${APP_ORIGIN}${CUSTOMER_PAGE}`);
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
  mainWindow = win;
  const offEvents = forwardEvents(services!, win.webContents);
  win.on('closed', () => {
    offEvents();
    if (mainWindow === win) mainWindow = null;
    // The customer display does not outlive the till.
    customerWindow?.close();
  });
  win.once('ready-to-show', () => win.show());
  await win.loadURL(`${APP_ORIGIN}/index.html`);
}

// One copy per user: a second one would print the same receipts and hold a second event stream.
if (!app.requestSingleInstanceLock()) {
  console.error('[electron] the cashier app is already running: its window was brought to the front');
  app.exit(0);
} else {
  app.on('second-instance', () => {
    const win = mainWindow;
    if (!win) return;
    if (win.isMinimized()) win.restore();
    win.show();
    win.focus();
  });

  app.whenReady().then(async () => {
    harden();
    serveApp();
    await startServices();
    registerIpcHandlers(ipcMain, services!);
    registerCustomerIpc(ipcMain, services!);
    await createWindow();
    await createCustomerWindow().catch((err: unknown) => console.error(`[electron] no customer display: ${(err as Error).message}`));
  }).catch((err: unknown) => {
    console.error(`[electron] cannot start: ${(err as Error).message}`);
    void stop().finally(() => app.exit(1));
  });

  app.on('window-all-closed', () => {
    void stop().finally(() => app.quit());
  });
}
