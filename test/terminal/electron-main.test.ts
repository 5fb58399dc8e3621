/**
 * The Electron main process in Node with `electron` mocked: window security flags, navigation and
 * new windows denied, permissions denied, the app:// protocol with CSP, IPC sender checks — wired
 * to the real embedded stack (the same wiring `npm start` uses).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { ipcChannel } from '../../shared/contracts/terminal-api';
import { CSP } from '../../shared/terminal/web-host';

const dir = mkdtempSync(join(tmpdir(), 'pos-main-'));
const m = vi.hoisted(() => ({
  appHandlers: new Map<string, (...a: unknown[]) => void>(),
  ipc: new Map<string, (...a: unknown[]) => Promise<unknown>>(),
  protocolHandler: null as null | ((req: Request) => Promise<Response>),
  permissionRequest: null as null | ((wc: unknown, perm: string, cb: (ok: boolean) => void) => void),
  windows: [] as { opts: { webPreferences: Record<string, unknown> }; url?: string }[],
  openExternal: [] as string[],
  ready: null as null | Promise<void>,
  readyResolve: null as null | (() => void),
}));

vi.mock('electron', () => {
  class BrowserWindow {
    webContents = { send: () => undefined, isDestroyed: () => false };
    constructor(public opts: { webPreferences: Record<string, unknown> }) {
      m.windows.push(this as never);
    }
    on() { return this; }
    once() { return this; }
    async loadURL(url: string) { (this as unknown as { url: string }).url = url; m.readyResolve?.(); }
  }
  return {
    app: {
      enableSandbox: vi.fn(),
      whenReady: () => Promise.resolve(),
      getPath: () => join(dir, 'userData'),
      on: (ev: string, fn: (...a: unknown[]) => void) => { m.appHandlers.set(ev, fn); },
      exit: vi.fn(),
      quit: vi.fn(),
    },
    BrowserWindow,
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

beforeAll(async () => {
  const renderer = join(dir, 'renderer');
  mkdirSync(renderer, { recursive: true });
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>POS</title>');
  process.env.POS_RENDERER_DIR = renderer;
  process.env.POS_DATA_DIR = join(dir, 'data');
  m.ready = new Promise<void>((ok) => { m.readyResolve = ok; });
  await import('../../electron/main');
  await Promise.race([m.ready, new Promise((_, fail) => setTimeout(() => fail(new Error('window never loaded')), 30_000))]);
});
afterAll(async () => {
  // window-all-closed stops the embedded stack.
  m.appHandlers.get('window-all-closed')?.();
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dir, { recursive: true, force: true });
});

it('opens one sandboxed, context-isolated window without Node, loading app://pos/', () => {
  expect(m.windows).toHaveLength(1);
  const w = m.windows[0]!;
  expect(w.url).toBe('app://pos/index.html');
  expect(w.opts.webPreferences).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, webviewTag: false });
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
  expect(m.openExternal).toEqual([]);
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

it('IPC: the app page reaches the real services; other senders and bad input are refused', async () => {
  const session = m.ipc.get(ipcChannel('session'))!;
  const r = (await session({ senderFrame: { url: 'app://pos/index.html' } })) as { ok: boolean; value: { terminal: string; shell: string } };
  expect(r).toMatchObject({ ok: true, value: { terminal: 'cashier-1', shell: 'electron' } });
  expect(await session({ senderFrame: { url: 'http://127.0.0.1:1/' } })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN_SENDER' } });
  expect(await m.ipc.get(ipcChannel('getOrder'))!({ senderFrame: { url: 'app://pos/' } }, { $gt: '' })).toMatchObject({ ok: false, error: { code: 'BAD_INPUT' } });
});
