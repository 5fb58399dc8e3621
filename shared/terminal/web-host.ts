/**
 * The loopback web host: serves the built renderer and the terminal API over HTTP, so the same UI
 * runs in an ordinary browser (tests in Chromium, machines without the Electron binary).
 *
 * Authentication: no long-lived secret ever appears on a command line or in a URL (any local user
 * reads `/proc/PID/cmdline`). The host mints single-use start codes (`launchUrl()`), valid for a
 * short while; the browser opens `/?code=…`, the host answers with an HttpOnly, SameSite=Strict
 * session cookie (path `/api`) and redirects to the app; the same code is refused the second
 * time. Every /api request must carry that cookie, or `Authorization: Bearer <secret>` with the
 * per-launch secret (in-process callers only: tests and tools started by the same process).
 *
 * Customer display: `/customer` serves the customer page, which reads `GET /api/customer/events`
 * (Server-Sent Events of CustomerView only). The cashier's browser session may open it; a separate
 * screen gets its own single-use link (`customerLaunchUrl()`) whose cookie is good for
 * `/api/customer/…` only — nothing of the cashier's API.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { CustomerView, TerminalEvent } from '../contracts/terminal-api';
import { BodyTooLargeError, readRawBody } from '../util/raw-body';
import { dispatch } from './api-schema';
import type { TerminalServices } from './services';

export const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
  '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.woff': 'font/woff', '.map': 'application/json', '.txt': 'text/plain; charset=utf-8',
};

const MAX_BODY = 256 * 1024;

export interface WebHostOptions {
  services: Pick<TerminalServices, 'onEvent'> & Partial<Pick<TerminalServices, 'customerView' | 'onCustomerView'>> & Parameters<typeof dispatch>[0];
  rendererDir: string;
  port?: number;
  /** Fixed Bearer secret (tests); default: 32 random bytes per launch. */
  secret?: string;
  /** SSE keep-alive comment interval. */
  keepAliveMs?: number;
  /** How long a start code from launchUrl() stays valid (default 2 minutes). */
  codeTtlMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

export interface WebHost {
  /** `http://127.0.0.1:PORT/` (no credential: opening it alone gives no access). */
  url: string;
  origin: string;
  /** Bearer secret for in-process callers (tests, tools); never printed or put in a URL. */
  secret: string;
  /** A fresh single-use start URL `http://127.0.0.1:PORT/?code=…` for one browser. */
  launchUrl(): string;
  /** A fresh single-use link to the customer display page; its session reaches the customer feed only. */
  customerLaunchUrl(): string;
  /** Name of the session cookie (carries the port: two hosts on one machine keep theirs apart). */
  cookieName: string;
  /** Called each time a start code is exchanged (a browser opened the app). */
  onSession(listener: () => void): () => void;
  close(): Promise<void>;
}

const digest = (s: string) => createHash('sha256').update(s).digest('hex');
const MAX_SESSIONS = 64;

/** Where a successful code exchange sends the browser: the app (or the customer page), authenticated by its cookie alone. */
const AFTER_EXCHANGE = '/';
const CUSTOMER_PAGE = '/customer';
const CUSTOMER_EVENTS = '/api/customer/events';

/** What a session may reach: the whole API, or the customer feed only. */
type Scope = 'app' | 'customer';

export async function startWebHost(opts: WebHostOptions): Promise<WebHost> {
  const secret = opts.secret ?? randomBytes(32).toString('base64url');
  const secretDigest = Buffer.from(digest(secret), 'hex');
  const root = resolve(opts.rendererDir);
  const streams = new Set<ServerResponse>();
  const codeTtlMs = opts.codeTtlMs ?? 120_000;
  const now = opts.now ?? Date.now;
  /** digest(code) → expiry and scope; deleted when used (single use) or expired. */
  const codes = new Map<string, { exp: number; scope: Scope }>();
  /** digests of session cookies given out → their scope (oldest dropped first beyond MAX_SESSIONS). */
  const sessions = new Map<string, Scope>();
  let port = 0;
  let cookieName = 'pos_session';
  const sessionListeners = new Set<() => void>();

  const cookieValue = (req: IncomingMessage): string | null => {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const i = part.indexOf('=');
      if (i > 0 && part.slice(0, i).trim() === cookieName) return part.slice(i + 1).trim();
    }
    return null;
  };

  // Digests have equal length, so the comparison is constant-time whatever the caller sent.
  const authorized = (req: IncomingMessage, need: Scope): boolean => {
    const c = cookieValue(req);
    const scope = c ? sessions.get(digest(c)) : undefined;
    if (scope === 'app' || (scope === 'customer' && need === 'customer')) return true;
    const m = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    return !!m && timingSafeEqual(Buffer.from(digest(m[1]!), 'hex'), secretDigest);
  };

  /** `GET /?code=…`: a valid unused code becomes a session cookie; anything else is refused. */
  const exchange = (res: ServerResponse, code: string): void => {
    const t = now();
    for (const [k, c] of codes) if (c.exp <= t) codes.delete(k);
    const key = digest(code);
    const entry = codes.get(key);
    if (!entry) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
      res.end('此启动链接已使用或已过期，请重新启动收银程序。\nThis start link was already used or has expired: start the app again.\n');
      return;
    }
    codes.delete(key); // single use, whatever happens next
    const session = randomBytes(32).toString('base64url');
    sessions.set(digest(session), entry.scope);
    if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    const customer = entry.scope === 'customer';
    res.writeHead(303, {
      location: customer ? CUSTOMER_PAGE : AFTER_EXCHANGE,
      'set-cookie': `${cookieName}=${session}; Path=${customer ? '/api/customer' : '/api'}; HttpOnly; SameSite=Strict`,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
    });
    res.end();
    for (const l of sessionListeners) {
      try {
        l();
      } catch {
        // a listener's failure is not the browser's
      }
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const serveStatic = (req: IncomingMessage, res: ServerResponse, pathname: string): void => {
    let rel: string;
    try {
      rel = decodeURIComponent(pathname);
    } catch {
      return send(res, 400, { code: 'BAD_PATH', message: 'malformed path' });
    }
    let file = normalize(join(root, rel));
    if (file !== root && !file.startsWith(root + sep)) return send(res, 404, { code: 'NOT_FOUND', message: 'not found' });
    // The customer display has its own page (its own bundle: none of the cashier's screens).
    if (rel === CUSTOMER_PAGE || rel === `${CUSTOMER_PAGE}/`) file = join(root, 'customer.html');
    else if (!existsSync(file) || statSync(file).isDirectory()) {
      // Client-side routes fall back to the app; missing assets (with an extension) are 404.
      if (extname(rel)) return send(res, 404, { code: 'NOT_FOUND', message: `${rel} not found` });
      file = join(root, 'index.html');
    }
    const headers: Record<string, string> = {
      'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY', 'cache-control': 'no-cache',
    };
    if (!existsSync(file)) {
      res.writeHead(503, { ...headers, 'content-type': 'text/plain; charset=utf-8' });
      res.end(`renderer not built: run "npm run build:renderer" (looked in ${root})\n`);
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      return void res.end();
    }
    // Opened before the headers go out: a file that vanished (renderer rebuilt meanwhile) is a 404,
    // and a read error later ends the response instead of throwing out of the stream.
    const stream = createReadStream(file);
    stream.once('open', () => {
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      stream.pipe(res);
    });
    stream.once('error', () => {
      if (!res.headersSent) send(res, 404, { code: 'NOT_FOUND', message: 'not found' });
      else res.destroy();
    });
    res.once('close', () => stream.destroy());
  };

  /**
   * Answers with a Server-Sent Events stream: the `first` frames at once, then each one `subscribe`
   * pushes, with keep-alive comments; all stopped when the client goes.
   */
  const serveSse = (req: IncomingMessage, res: ServerResponse, first: unknown[], subscribe: (push: (data: unknown) => void) => () => void): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': connected\n\n');
    const push = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    for (const d of first) push(d);
    streams.add(res);
    const off = subscribe(push);
    const ka = setInterval(() => res.write(': keep-alive\n\n'), opts.keepAliveMs ?? 15_000);
    req.on('close', () => { off(); clearInterval(ka); streams.delete(res); });
  };

  /** `GET /api/customer/events`: the customer display's view, now and at every change; nothing else. */
  const customerEvents = (req: IncomingMessage, res: ServerResponse): void => {
    if (!authorized(req, 'customer')) return send(res, 401, { code: 'UNAUTHORIZED', message: 'no valid session: open the customer display from its link' });
    if (req.method !== 'GET') return send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `GET ${CUSTOMER_EVENTS}` });
    const svc = opts.services;
    if (!svc.customerView || !svc.onCustomerView) return send(res, 404, { code: 'NOT_FOUND', message: 'no customer display on this host' });
    serveSse(req, res, [svc.customerView()], (push) => svc.onCustomerView!((v: CustomerView) => push(v)));
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    if (pathname === CUSTOMER_EVENTS) return customerEvents(req, res);
    if (!authorized(req, 'app')) return send(res, 401, { code: 'UNAUTHORIZED', message: 'no valid session: open the app from its start link' });
    if (pathname === '/api/events') {
      if (req.method !== 'GET') return send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'GET /api/events' });
      // The current link state first: a page whose stream reconnected would otherwise show
      // "connecting" until the relay link changes again.
      const state = (opts.services as { connection?: unknown }).connection;
      return serveSse(req, res, typeof state === 'string' ? [{ type: 'connection', state }] : [], (push) =>
        opts.services.onEvent((e: TerminalEvent) => push(e)));
    }
    const method = pathname.slice('/api/'.length);
    if (req.method !== 'POST') return send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `POST /api/${method}` });
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return send(res, 415, { ok: false, error: { code: 'BAD_INPUT', message: 'content-type must be application/json' } });
    }
    let payload: unknown;
    try {
      const raw = await readRawBody(req, MAX_BODY);
      payload = raw.length ? JSON.parse(raw.toString('utf8')) : {};
    } catch (err) {
      const tooLarge = err instanceof BodyTooLargeError;
      return send(res, tooLarge ? 413 : 400, { ok: false, error: { code: 'BAD_INPUT', message: tooLarge ? 'body too large' : 'body is not valid JSON' } });
    }
    const args = (payload as { args?: unknown } | null)?.args ?? [];
    const result = await dispatch(opts.services, method, args);
    // Errors are data (ApiResult); 404 only for a method that does not exist.
    send(res, !result.ok && result.error.code === 'UNKNOWN_METHOD' ? 404 : 200, result);
  };

  const server = createServer((req, res) => {
    // DNS-rebinding guard: a page served under another name must not read this host's pages.
    const host = (req.headers.host ?? '').toLowerCase();
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return send(res, 421, { code: 'MISDIRECTED', message: 'use http://127.0.0.1' });
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) {
      handleApi(req, res, url.pathname).catch((err) => {
        if (!res.headersSent) send(res, 500, { ok: false, error: { code: 'INTERNAL', message: (err as Error).message } });
        else res.end();
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'GET only' });
    const code = url.searchParams.get('code');
    if (url.pathname === '/' && code !== null && req.method === 'GET') return exchange(res, code);
    serveStatic(req, res, url.pathname);
  });
  server.keepAliveTimeout = 5_000;

  // Loopback only: the API is the cashier's till.
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  port = (server.address() as AddressInfo).port;
  cookieName = `pos_session_${port}`;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/`,
    origin,
    secret,
    cookieName,
    onSession: (listener) => {
      sessionListeners.add(listener);
      return () => sessionListeners.delete(listener);
    },
    launchUrl: () => {
      const code = randomBytes(24).toString('base64url');
      codes.set(digest(code), { exp: now() + codeTtlMs, scope: 'app' });
      return `${origin}/?code=${code}`;
    },
    customerLaunchUrl: () => {
      const code = randomBytes(24).toString('base64url');
      codes.set(digest(code), { exp: now() + codeTtlMs, scope: 'customer' });
      return `${origin}/?code=${code}`;
    },
    close: () => new Promise<void>((ok) => {
      for (const s of streams) s.end();
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}
