/**
 * The Electron main process in Node with only the `electron` module replaced (its binary is not
 * installed here): window security flags, navigation and new windows denied, permissions denied,
 * the app:// protocol with CSP, IPC sender checks, the single-instance lock — and its terminal
 * services talking to a real relay and sandbox, passed in the environment exactly as `npm start`
 * passes them (the main process itself starts no relay).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { CUSTOMER_VIEW_CHANNEL, ipcChannel } from '../../shared/contracts/terminal-api';
import { CSP } from '../../shared/terminal/web-host';
import { startStack, type Stack } from '../helpers/stack';

const dir = mkdtempSync(join(tmpdir(), 'pos-main-'));
const m = vi.hoisted(() => ({
  appHandlers: new Map<string, (...a: unknown[]) => void>(),
  ipc: new Map<string, (...a: unknown[]) => Promise<unknown>>(),
  protocolHandler: null as null | ((req: Request) => Promise<Response>),
  permissionRequest: null as null | ((wc: unknown, perm: string, cb: (ok: boolean) => void) => void),
  windows: [] as { opts: { webPreferences: Record<string, unknown> }; url?: string; calls: string[]; minimized: boolean }[],
  openExternal: [] as string[],
  ready: null as null | Promise<void>,
  readyResolve: null as null | (() => void),
  gotLock: true,
  exits: [] as number[],
  quit: null as null | (() => void),
}));

vi.mock('electron', () => {
  class BrowserWindow {
    webContents = { send: () => undefined, isDestroyed: () => false };
    calls: string[] = [];
    minimized = true;
    constructor(public opts: { webPreferences: Record<string, unknown> }) {
      m.windows.push(this as never);
    }
    on() { return this; }
    once() { return this; }
    isMinimized() { return this.minimized; }
    restore() { this.calls.push('restore'); this.minimized = false; }
    show() { this.calls.push('show'); }
    focus() { this.calls.push('focus'); }
    showInactive() { this.calls.push('showInactive'); }
    close() { this.calls.push('close'); }
    // Ready once the last window (the customer display) has loaded.
    async loadURL(url: string) { (this as unknown as { url: string }).url = url; if (url.endsWith('/customer.html')) m.readyResolve?.(); }
  }
  return {
    app: {
      enableSandbox: vi.fn(),
      whenReady: () => Promise.resolve(),
      getPath: () => join(dir, 'userData'),
      on: (ev: string, fn: (...a: unknown[]) => void) => { m.appHandlers.set(ev, fn); },
      requestSingleInstanceLock: () => m.gotLock,
      exit: (code: number) => { m.exits.push(code); },
      quit: () => { m.quit?.(); },
    },
    BrowserWindow,
    // Two screens: the customer display goes full screen on the second one.
    screen: {
      getPrimaryDisplay: () => ({ id: 1, bounds: { x: 0, y: 0, width: 1920, height: 1080 } }),
      getAllDisplays: () => [
        { id: 1, bounds: { x: 0, y: 0, width: 1920, height: 1080 } },
        { id: 2, bounds: { x: 1920, y: 0, width: 1024, height: 768 } },
      ],
    },
    ipcMain: {
      handle: (ch: string, fn: (...a: unknown[]) => Promise<unknown>) => { m.ipc.set(ch, fn); },
      removeHandler: (ch: string) => { m.ipc.delete(ch); },
    },
    protocol: {
      registerSchemesAsPrivileged: vi.fn(),
      handle: (_s: string, fn: (req: Request) => Promise<Response>) => { m.protocolHandler = fn; },
    },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (fn: never) => { m.permissionRequest = fn; },
        setPermissionCheckHandler: vi.fn(),
        webRequest: { onHeadersReceived: vi.fn() },
      },
    },
    shell: { openExternal: async (u: string) => { m.openExternal.push(u); } },
  };
});

let stack: Stack;
const ENV = ['POS_RENDERER_DIR', 'POS_RELAY_URL', 'POS_TERMINAL_TOKEN', 'POS_MANAGER_TOKEN', 'POS_SANDBOX_URL'] as const;

beforeAll(async () => {
  const renderer = join(dir, 'renderer');
  mkdirSync(renderer, { recursive: true });
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>POS</title>');
  stack = await startStack({ dir: join(dir, 'stack') });
  Object.assign(process.env, {
    POS_RENDERER_DIR: renderer, POS_RELAY_URL: stack.relayUrl, POS_TERMINAL_TOKEN: stack.cashierToken,
    POS_MANAGER_TOKEN: stack.managerToken, POS_SANDBOX_URL: stack.sandboxUrl,
  });
  m.ready = new Promise<void>((ok) => { m.readyResolve = ok; });
  await import('../../electron/main');
  await m.ready;
}, 60_000);
afterAll(async () => {
  for (const k of ENV) delete process.env[k];
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('opens one sandboxed, context-isolated window without Node, loading app://pos/', () => {
  const w = m.windows[0]!;
  expect(w.url).toBe('app://pos/index.html');
  expect(w.opts.webPreferences).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, webviewTag: false });
  expect(String(w.opts.webPreferences.preload)).toMatch(/[\\/]preload\.cjs$/);
});

it('opens the customer display full screen on the second screen, locked down, with its own preload', () => {
  expect(m.windows).toHaveLength(2);
  const c = m.windows[1]! as unknown as { url: string; opts: Record<string, unknown> & { webPreferences: Record<string, unknown> } };
  expect(c.url).toBe('app://pos/customer.html');
  expect(c.opts).toMatchObject({ x: 1920, y: 0, width: 1024, height: 768, fullscreen: true });
  expect(c.opts.webPreferences).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, webviewTag: false });
  expect(String(c.opts.webPreferences.preload)).toMatch(/[\\/]customer-preload\.cjs$/);
});

it('IPC: the customer page reads the customer view only; the cashier API refuses it, and it refuses other pages', async () => {
  const customer = { senderFrame: { url: 'app://pos/customer.html' } };
  const view = (await m.ipc.get(CUSTOMER_VIEW_CHANNEL)!(customer)) as { ok: boolean; value: Record<string, unknown> };
  expect(view).toMatchObject({ ok: true, value: { phase: 'idle', language: 'zh-CN' } });
  expect(Object.keys(view.value).sort()).toEqual(['language', 'phase', 'store_logo', 'store_name']);
  for (const method of ['session', 'getSettings', 'listOrders', 'print'] as const) {
    expect(await m.ipc.get(ipcChannel(method))!(customer)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN_SENDER' } });
  }
  expect(await m.ipc.get(CUSTOMER_VIEW_CHANNEL)!({ senderFrame: { url: 'app://pos/index.html' } })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN_SENDER' } });
  expect(await m.ipc.get(CUSTOMER_VIEW_CHANNEL)!({ senderFrame: { url: 'http://127.0.0.1:1/customer.html' } })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN_SENDER' } });
});

it('denies navigation away from the app, new windows and permissions', () => {
  const listeners = new Map<string, (...a: unknown[]) => void>();
  let openHandler: ((d: { url: string }) => { action: string }) | null = null;
  const contents = { on: (ev: string, fn: (...a: unknown[]) => void) => listeners.set(ev, fn), setWindowOpenHandler: (fn: never) => { openHandler = fn; } };
  m.appHandlers.get('web-contents-created')!({}, contents);
  const prevent = vi.fn();
  listeners.get('will-navigate')!({ preventDefault: prevent }, 'https://evil.example/');
  expect(prevent).toHaveBeenCalledTimes(1);
  listeners.get('will-navigate')!({ preventDefault: prevent }, 'app://pos/orders');
  expect(prevent).toHaveBeenCalledTimes(1);
  const attach = vi.fn();
  listeners.get('will-attach-webview')!({ preventDefault: attach });
  expect(attach).toHaveBeenCalled();
  expect(openHandler!({ url: 'https://evil.example/' })).toEqual({ action: 'deny' });
  expect(openHandler!({ url: `${stack.relayUrl}/v1/orders` })).toEqual({ action: 'deny' });
  // Only the sandbox's phone page ("simulate the customer's scan") goes to the system browser.
  expect(openHandler!({ url: `${stack.sandboxUrl}/sandbox` })).toEqual({ action: 'deny' });
  expect(m.openExternal).toEqual([`${stack.sandboxUrl}/sandbox`]);
  let granted: boolean | null = null;
  m.permissionRequest!(null, 'media', (ok) => { granted = ok; });
  expect(granted).toBe(false);
});

it('serves the renderer on app:// with the CSP and refuses paths outside it', async () => {
  const ok = await m.protocolHandler!(new Request('app://pos/index.html'));
  expect(ok.status).toBe(200);
  expect(ok.headers.get('content-security-policy')).toBe(CSP);
  expect(await ok.text()).toContain('<title>POS</title>');
  expect((await m.protocolHandler!(new Request('app://other/index.html'))).status).toBe(404);
});

it('IPC: the app page reaches the real services and relay; other senders and bad input are refused', async () => {
  const session = m.ipc.get(ipcChannel('session'))!;
  const r = (await session({ senderFrame: { url: 'app://pos/index.html' } })) as { ok: boolean; value: { terminal: string; shell: string } };
  expect(r).toMatchObject({ ok: true, value: { terminal: 'cashier-1', shell: 'electron', manager: true, sandbox_url: `${stack.sandboxUrl}/sandbox` } });
  // The tokens came in the environment; the screens still only learn that they are set.
  const settings = (await m.ipc.get(ipcChannel('getSettings'))!({ senderFrame: { url: 'app://pos/' } })) as { ok: true; value: Record<string, unknown> };
  expect(settings.value).toMatchObject({ relay_url: stack.relayUrl, terminal_token_set: true, manager_token_set: true });
  expect(JSON.stringify(settings)).not.toContain(stack.cashierToken);
  expect(await session({ senderFrame: { url: 'http://127.0.0.1:1/' } })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN_SENDER' } });
  expect(await m.ipc.get(ipcChannel('getOrder'))!({ senderFrame: { url: 'app://pos/' } }, { $gt: '' })).toMatchObject({ ok: false, error: { code: 'BAD_INPUT' } });
});

it('a second start brings the first window to the front', () => {
  const w = m.windows[0]!;
  m.appHandlers.get('second-instance')!({}, ['electron', '.'], dir);
  expect(w.calls).toEqual(['restore', 'show', 'focus']);
});

it('closing the window stops the services (nothing prints any more), then quits', async () => {
  const call = (method: Parameters<typeof ipcChannel>[0], ...args: unknown[]) =>
    m.ipc.get(ipcChannel(method))!({ senderFrame: { url: 'app://pos/' } }, ...args) as Promise<{ ok: boolean; value: any }>;
  const merchants = (await call('listMerchants')).value as { mchid: string }[];
  const order = (await call('createOrder', { sub_orders: [{ mchid: merchants[0]!.mchid, description: '面', amount: 100 }, { mchid: merchants[1]!.mchid, description: '茶', amount: 200 }] }, 'electron-main-0001')).value;
  expect((await call('print', 'slip', order.combine_out_trade_no, true)).value).toMatchObject({ state: 'done', reprint: true });
  const quit = new Promise<void>((ok) => { m.quit = ok; });
  m.appHandlers.get('window-all-closed')!();
  await quit;
  expect((await call('print', 'slip', order.combine_out_trade_no, true)).value).toMatchObject({ state: 'queued', attempts: 0 });
});

it('without the single-instance lock it exits at once and starts nothing', async () => {
  vi.resetModules();
  m.gotLock = false;
  const windows = m.windows.length;
  const handlers = m.ipc.size;
  m.appHandlers.clear();
  await import('../../electron/main');
  expect(m.exits).toEqual([0]);
  expect(m.appHandlers.has('second-instance')).toBe(false);
  await Promise.resolve();
  expect(m.windows.length).toBe(windows);
  expect(m.ipc.size).toBe(handlers);
});
