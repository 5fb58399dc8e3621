/**
 * IPC wiring of the main process, as a pure function over an `ipcMain`-like object so it is
 * unit-tested in Node without Electron. Every handler checks its sender (the frame must be our app
 * page) and validates its input (api-schema) before the services see anything.
 */
import { EVENT_CHANNEL, TERMINAL_METHODS, ipcChannel, type ApiResult, type TerminalApi, type TerminalEvent } from '../shared/contracts/terminal-api';
import { dispatch } from '../shared/terminal/api-schema';

export interface IpcSenderLike {
  senderFrame?: { url: string } | null;
}

export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcSenderLike, ...args: unknown[]) => Promise<unknown> | unknown): void;
  removeHandler(channel: string): void;
}

export interface WebContentsLike {
  send(channel: string, ...args: unknown[]): void;
  isDestroyed(): boolean;
}

/** The app's pages are served from `app://pos/`; anything else (devtools extensions, navigated frames) is refused. */
export const APP_ORIGIN = 'app://pos';

export function isAppSender(event: IpcSenderLike, origin = APP_ORIGIN): boolean {
  const url = event?.senderFrame?.url;
  if (typeof url !== 'string') return false;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}` === origin;
  } catch {
    return false;
  }
}

/** Registers one handler per TERMINAL_METHODS entry; returns a function that removes them all. */
export function registerIpcHandlers(ipcMain: IpcMainLike, api: TerminalApi, opts: { origin?: string } = {}): () => void {
  for (const method of TERMINAL_METHODS) {
    ipcMain.handle(ipcChannel(method), async (event, ...args): Promise<ApiResult<unknown>> => {
      if (!isAppSender(event, opts.origin)) {
        return { ok: false, error: { code: 'FORBIDDEN_SENDER', message: `${method}: caller is not the app page` } };
      }
      return dispatch(api, method, args);
    });
  }
  return () => {
    for (const method of TERMINAL_METHODS) ipcMain.removeHandler(ipcChannel(method));
  };
}

/** Forwards service events to one window on the single event channel. */
export function forwardEvents(services: { onEvent(l: (e: TerminalEvent) => void): () => void }, wc: WebContentsLike): () => void {
  return services.onEvent((e) => {
    if (!wc.isDestroyed()) wc.send(EVENT_CHANNEL, e);
  });
}
