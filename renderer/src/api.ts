/**
 * The terminal API as the screens see it: Electron's preload (`window.pos`) when present,
 * otherwise the loopback web host over HTTP with the per-launch secret. Both give the same
 * `PreloadApi`; failures always reject with an `ApiFailure` carrying the relay/terminal code.
 */
import {
  TERMINAL_METHODS,
  type ApiResult, type PreloadApi, type TerminalApi, type TerminalEvent, type TerminalMethod,
} from './contract';
import type { ErrorBody } from './contract';
import { readSseData } from './sse';

export class ApiFailure extends Error implements ErrorBody {
  readonly code: string;
  readonly field?: string;
  readonly retry_after_seconds?: number;
  constructor(body: ErrorBody) {
    super(body.message);
    this.name = 'ApiFailure';
    this.code = body.code;
    if (body.field !== undefined) this.field = body.field;
    if (body.retry_after_seconds !== undefined) this.retry_after_seconds = body.retry_after_seconds;
  }
}

/** Normalises whatever a call rejected with (ErrorBody-shaped object, Error, string). */
export function toFailure(err: unknown): ApiFailure {
  if (err instanceof ApiFailure) return err;
  if (err && typeof err === 'object' && 'code' in err && typeof (err as ErrorBody).code === 'string') {
    const e = err as ErrorBody;
    return new ApiFailure({ ...e, message: String(e.message ?? '') });
  }
  if (err instanceof TypeError) return new ApiFailure({ code: 'NETWORK', message: err.message });
  return new ApiFailure({ code: 'UNKNOWN', message: err instanceof Error ? err.message : String(err) });
}

/**
 * The web host authenticates this page by its HttpOnly session cookie (set when the single-use
 * start link was opened), never by anything in the URL or in storage. A `#secret=…` fragment left
 * by an older start link is only removed from the address bar.
 */
function clearLegacySecret(): void {
  try {
    sessionStorage.removeItem('pos.secret');
  } catch {
    // storage may be unavailable: nothing to clear then
  }
  if (/(?:^#|&)secret=/.test(location.hash)) history.replaceState(null, '', location.pathname + location.search);
}

type Listener = (event: TerminalEvent) => void;

/** The preload API, plus (HTTP only) a hook called each time the event stream (re)opens. */
export type RendererApi = PreloadApi & { onStreamOpen?(listener: () => void): () => void; closeStream?(): void };

/**
 * HTTP client of the web host: `POST /api/<method>` and an SSE stream read through fetch. In the
 * page it authenticates by the session cookie (`secret` null); in-process callers (tests, tools)
 * pass the per-launch Bearer secret. `onExpired` is called once when the host refuses the page
 * (401: the session is gone, e.g. the app was restarted); the event stream then stops.
 */
export function createHttpApi(secret: string | null, base = '', onExpired?: () => void): RendererApi {
  const headers: Record<string, string> = secret ? { Authorization: `Bearer ${secret}` } : {};
  let expired = false;
  const expire = () => {
    if (expired) return;
    expired = true;
    stop.abort();
    onExpired?.();
  };

  async function call(method: TerminalMethod, args: unknown[]): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${base}/api/${method}`, {
        method: 'POST',
        headers: { ...headers, 'Content-Type': 'application/json' },
        body: JSON.stringify({ args }),
        credentials: 'same-origin',
      });
    } catch (err) {
      throw new ApiFailure({ code: 'NETWORK', message: err instanceof Error ? err.message : String(err) });
    }
    // The web host itself refuses a wrong per-launch secret (page opened from an old address).
    if (res.status === 401) {
      expire();
      throw new ApiFailure({ code: 'SESSION_EXPIRED', message: 'web host refused this page (session cookie or secret)' });
    }
    let result: ApiResult<unknown>;
    try {
      result = (await res.json()) as ApiResult<unknown>;
    } catch {
      throw new ApiFailure({ code: 'BAD_RESPONSE', message: `HTTP ${res.status}` });
    }
    if (result && result.ok === true) return result.value;
    if (result && result.ok === false && result.error) throw new ApiFailure(result.error);
    throw new ApiFailure({ code: 'BAD_RESPONSE', message: `HTTP ${res.status}` });
  }

  const listeners = new Set<Listener>();
  const openListeners = new Set<() => void>();
  let streaming = false;
  const stop = new AbortController();

  async function stream(): Promise<void> {
    let backoff = 250;
    while (!stop.signal.aborted) {
      try {
        const res = await fetch(`${base}/api/events`, { headers: { ...headers, Accept: 'text/event-stream' }, credentials: 'same-origin', signal: stop.signal });
        if (res.status === 401) {
          expire();
          break;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        backoff = 250;
        for (const l of openListeners) l();
        await readSseData(res.body, (data) => {
          let event: TerminalEvent;
          try {
            event = JSON.parse(data) as TerminalEvent;
          } catch {
            return;
          }
          for (const l of listeners) l(event);
        });
      } catch {
        // fall through to reconnect
      }
      if (stop.signal.aborted) break;
      for (const l of listeners) l({ type: 'connection', state: 'connecting' });
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  const api = {} as Record<string, unknown>;
  for (const m of TERMINAL_METHODS) api[m] = (...args: unknown[]) => call(m, args);
  api.onEvent = (listener: Listener) => {
    listeners.add(listener);
    if (!streaming) {
      streaming = true;
      void stream();
    }
    return () => listeners.delete(listener);
  };
  api.closeStream = () => stop.abort();
  api.onStreamOpen = (listener: () => void) => {
    openListeners.add(listener);
    return () => openListeners.delete(listener);
  };
  return api as unknown as RendererApi;
}

/** Wraps the preload so every rejection becomes an ApiFailure, like the HTTP client. */
function wrapPreload(pos: PreloadApi): PreloadApi {
  const api = {} as Record<string, unknown>;
  for (const m of TERMINAL_METHODS) {
    const fn = pos[m] as (...a: unknown[]) => Promise<unknown>;
    api[m] = async (...args: unknown[]) => {
      try {
        return await fn.apply(pos, args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  api.onEvent = (l: Listener) => pos.onEvent(l);
  return api as unknown as PreloadApi;
}

declare global {
  interface Window {
    pos?: PreloadApi;
  }
}

/** The terminal API of this page: Electron's preload, or the web host by its session cookie. */
export function connectApi(onExpired: () => void): RendererApi {
  if (window.pos) return wrapPreload(window.pos);
  clearLegacySecret();
  return createHttpApi(null, '', onExpired);
}

export type { TerminalApi };
