/** Main-process wiring in Node with electron mocked: sender checks and input validation. */
import { describe, expect, it, vi } from 'vitest';
import { EVENT_CHANNEL, TERMINAL_METHODS, ipcChannel, type TerminalApi, type TerminalEvent } from '../../shared/contracts/terminal-api';
import { forwardEvents, registerIpcHandlers, type IpcMainLike } from '../../electron/ipc';
import { sampleOrder } from './fixtures';

type Handler = (event: { senderFrame?: { url: string } | null }, ...args: unknown[]) => Promise<unknown>;

function fakeIpcMain() {
  const handlers = new Map<string, Handler>();
  const ipc: IpcMainLike = {
    handle: (ch, fn) => { handlers.set(ch, fn as Handler); },
    removeHandler: (ch) => { handlers.delete(ch); },
  };
  return { ipc, handlers };
}

function spyApi() {
  const calls: [string, unknown[]][] = [];
  const api = Object.fromEntries(TERMINAL_METHODS.map((m) => [m, async (...args: unknown[]) => {
    calls.push([m, args]);
    return m === 'getOrder' ? sampleOrder() : null;
  }])) as unknown as TerminalApi;
  return { api, calls };
}

const app = { senderFrame: { url: 'app://pos/index.html' } };

describe('IPC handlers', () => {
  it('registers one handler per method and removes them all', () => {
    const { ipc, handlers } = fakeIpcMain();
    const off = registerIpcHandlers(ipc, spyApi().api);
    expect([...handlers.keys()].sort()).toEqual(TERMINAL_METHODS.map(ipcChannel).sort());
    off();
    expect(handlers.size).toBe(0);
  });

  it('refuses unknown senders without calling the services', async () => {
    const { ipc, handlers } = fakeIpcMain();
    const { api, calls } = spyApi();
    registerIpcHandlers(ipc, api);
    const h = handlers.get(ipcChannel('getOrder'))!;
    for (const ev of [{ senderFrame: { url: 'https://evil.example/' } }, { senderFrame: { url: 'app://other/x' } }, { senderFrame: null }, {}]) {
      const r = await h(ev, 'POS1');
      expect(r).toMatchObject({ ok: false, error: { code: 'FORBIDDEN_SENDER' } });
    }
    expect(calls).toEqual([]);
  });

  it('refuses bad input, naming the argument, without calling the services', async () => {
    const { ipc, handlers } = fakeIpcMain();
    const { api, calls } = spyApi();
    registerIpcHandlers(ipc, api);
    const bad: [string, unknown[], string][] = [
      ['getOrder', ['../../etc/passwd'], 'args[0]'],
      ['getOrder', [], 'args'],
      ['createOrder', [{ sub_orders: [{ mchid: '1900000101', description: 'x', amount: 1.5 }] }, 'key-12345678'], 'sub_orders.0.amount'],
      ['createOrder', [{ sub_orders: [] }, 'key-12345678'], 'sub_orders'],
      ['print', ['invoice', 'POS1'], 'args[0]'],
      ['takings', ['27/11/2026'], 'args[0]'],
      ['listOrders', [{ state: 'PAID' }], 'state'],
      ['session', [1], 'args'],
    ];
    for (const [m, args, field] of bad) {
      const r = (await handlers.get(ipcChannel(m as never))!(app, ...args)) as { ok: boolean; error: { code: string; field: string } };
      expect(r.ok, m).toBe(false);
      expect(r.error.code).toBe('BAD_INPUT');
      expect(r.error.field).toBe(field);
    }
    expect(calls).toEqual([]);
  });

  it('passes valid calls from the app page and wraps errors as data', async () => {
    const { ipc, handlers } = fakeIpcMain();
    const { api, calls } = spyApi();
    api.closeOrder = async () => { throw { code: 'CLOSE_TOO_EARLY', message: 'wait', retry_after_seconds: 120 }; };
    registerIpcHandlers(ipc, api);
    const r = await handlers.get(ipcChannel('getOrder'))!(app, 'POS20261127043000001', true);
    expect(r).toEqual({ ok: true, value: sampleOrder() });
    expect(calls).toEqual([['getOrder', ['POS20261127043000001', true]]]);
    const e = await handlers.get(ipcChannel('closeOrder'))!(app, 'POS1');
    expect(e).toEqual({ ok: false, error: { code: 'CLOSE_TOO_EARLY', message: 'wait', retry_after_seconds: 120 } });
  });

  it('forwards service events on the event channel until the window is gone', () => {
    let listener: ((e: TerminalEvent) => void) | null = null;
    const services = { onEvent: (l: (e: TerminalEvent) => void) => { listener = l; return () => { listener = null; }; } };
    const sent: unknown[] = [];
    let destroyed = false;
    const off = forwardEvents(services, { send: (ch, e) => sent.push([ch, e]), isDestroyed: () => destroyed });
    listener!({ type: 'connection', state: 'online' });
    destroyed = true;
    listener!({ type: 'connection', state: 'offline' });
    expect(sent).toEqual([[EVENT_CHANNEL, { type: 'connection', state: 'online' }]]);
    off();
    expect(listener).toBeNull();
  });
});

describe('preload', () => {
  it('exposes window.pos built from TERMINAL_METHODS over invoke, never ipcRenderer itself', async () => {
    const exposed: Record<string, unknown> = {};
    const invoke = vi.fn(async (ch: string, ...args: unknown[]) =>
      ch === ipcChannel('closeOrder') ? { ok: false, error: { code: 'ORDER_PAID', message: 'paid' } } : { ok: true, value: { ch, args } });
    const on = vi.fn();
    const removeListener = vi.fn();
    vi.doMock('electron', () => ({
      contextBridge: { exposeInMainWorld: (k: string, v: unknown) => { exposed[k] = v; } },
      ipcRenderer: { invoke, on, removeListener },
    }));
    await import('../../electron/preload');
    const pos = exposed.pos as Record<string, (...a: unknown[]) => Promise<unknown>> & { onEvent(l: unknown): () => void };
    expect(Object.keys(exposed)).toEqual(['pos']);
    expect(Object.keys(pos).sort()).toEqual([...TERMINAL_METHODS, 'onEvent'].sort());
    expect(Object.values(pos).some((v) => v === invoke)).toBe(false);
    await expect(pos.getOrder('POS1', true)).resolves.toEqual({ ch: 'pos:getOrder', args: ['POS1', true] });
    await expect(pos.closeOrder('POS1')).rejects.toEqual({ code: 'ORDER_PAID', message: 'paid' });
    const off = pos.onEvent(() => undefined);
    expect(on).toHaveBeenCalledWith(EVENT_CHANNEL, expect.any(Function));
    off();
    expect(removeListener).toHaveBeenCalledWith(EVENT_CHANNEL, on.mock.calls[0]![1]);
    vi.doUnmock('electron');
  });
});
