/**
 * IPC wiring of the main process, as a pure function over an `ipcMain`-like object so it is
 * unit-tested in Node without Electron. Every handler checks its sender (the frame must be our app
 * page) and validates its input (api-schema) before the services see anything.
 */
import {
  CUSTOMER_EVENT_CHANNEL, CUSTOMER_VIEW_CHANNEL, EVENT_CHANNEL, TERMINAL_METHODS, ipcChannel,
  type ApiResult, type CustomerView, type TerminalApi, type TerminalEvent,
} from '../shared/contracts/terminal-api';
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

/** The customer display's page: it may read the customer view, and nothing else. */
export const CUSTOMER_PAGE = '/customer.html';

export function isCustomerSender(event: IpcSenderLike, origin = APP_ORIGIN): boolean {
  if (!isAppSender(event, origin)) return false;
  try {
    return new URL(event.senderFrame!.url).pathname === CUSTOMER_PAGE;
  } catch {
    return false;
  }
}

/** Registers one handler per TERMINAL_METHODS entry; returns a function that removes them all. */
export function registerIpcHandlers(ipcMain: IpcMainLike, api: TerminalApi, opts: { origin?: string } = {}): () => void {
  for (const method of TERMINAL_METHODS) {
    ipcMain.handle(ipcChannel(method), async (event, ...args): Promise<ApiResult<unknown>> => {
      // The customer display is same-origin but never the cashier: refused by its page.
      if (!isAppSender(event, opts.origin) || isCustomerSender(event, opts.origin)) {
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

/** The customer display's one IPC method (its current view), for the customer page only. */
export function registerCustomerIpc(ipcMain: IpcMainLike, feed: { customerView(): CustomerView }, opts: { origin?: string } = {}): () => void {
  ipcMain.handle(CUSTOMER_VIEW_CHANNEL, (event): ApiResult<CustomerView> => {
    if (!isCustomerSender(event, opts.origin)) {
      return { ok: false, error: { code: 'FORBIDDEN_SENDER', message: 'customer view: caller is not the customer display page' } };
    }
    return { ok: true, value: feed.customerView() };
  });
  return () => ipcMain.removeHandler(CUSTOMER_VIEW_CHANNEL);
}

/** Forwards the customer view (only it) to the customer display's window. */
export function forwardCustomerView(feed: { onCustomerView(l: (v: CustomerView) => void): () => void }, wc: WebContentsLike): () => void {
  return feed.onCustomerView((v) => {
    if (!wc.isDestroyed()) wc.send(CUSTOMER_EVENT_CHANNEL, v);
  });
}
