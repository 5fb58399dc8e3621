/**
 * Preload (sandboxed, context-isolated): exposes `window.pos`, a typed API built from
 * TERMINAL_METHODS over ipcRenderer.invoke, and `onEvent`. The page never gets ipcRenderer itself.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { EVENT_CHANNEL, TERMINAL_METHODS, ipcChannel, type ApiResult, type PreloadApi, type TerminalEvent } from '../shared/contracts/terminal-api';

const api: Record<string, unknown> = {};
for (const method of TERMINAL_METHODS) {
  api[method] = async (...args: unknown[]) => {
    const r = (await ipcRenderer.invoke(ipcChannel(method), ...args)) as ApiResult<unknown>;
    if (r.ok) return r.value;
    throw r.error;
  };
}
api.onEvent = (listener: (e: TerminalEvent) => void) => {
  const h = (_e: unknown, event: TerminalEvent) => listener(event);
  ipcRenderer.on(EVENT_CHANNEL, h);
  return () => { ipcRenderer.removeListener(EVENT_CHANNEL, h); };
};

contextBridge.exposeInMainWorld('pos', api as unknown as PreloadApi);
