/**
 * The loopback web host: serves the built renderer and the terminal API over HTTP, so the same UI
 * runs in an ordinary browser (tests in Chromium, machines without the Electron binary).
 * Every /api request must carry the per-launch secret (`Authorization: Bearer <secret>`); the page
 * gets it from the URL fragment, which browsers never send to servers or in Referer headers.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { TerminalEvent } from '../contracts/terminal-api';
import { BodyTooLargeError, readRawBody } from '../wechatpay/raw-body';
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
  services: Pick<TerminalServices, 'onEvent'> & Parameters<typeof dispatch>[0];
  rendererDir: string;
  port?: number;
  /** Fixed secret (tests); default: 32 random bytes per launch. */
  secret?: string;
  /** SSE keep-alive comment interval. */
  keepAliveMs?: number;
}

export interface WebHost {
  /** `http://127.0.0.1:PORT/#secret=SECRET` */
  url: string;
  origin: string;
  secret: string;
  close(): Promise<void>;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export async function startWebHost(opts: WebHostOptions): Promise<WebHost> {
  const secret = opts.secret ?? randomBytes(32).toString('base64url');
  const secretDigest = digest(secret);
  const root = resolve(opts.rendererDir);
  const streams = new Set<ServerResponse>();

  // Digests have equal length, so the comparison is constant-time whatever the caller sent.
  const authorized = (req: IncomingMessage): boolean => {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    return !!m && timingSafeEqual(digest(m[1]!), secretDigest);
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
    if (!existsSync(file) || statSync(file).isDirectory()) {
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
    res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    if (!authorized(req)) return send(res, 401, { code: 'UNAUTHORIZED', message: 'missing or wrong per-launch secret' });
    if (pathname === '/api/events') {
      if (req.method !== 'GET') return send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'GET /api/events' });
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write(': connected\n\n');
      // The current link state first: a page whose stream reconnected would otherwise show
      // "connecting" until the relay link changes again.
      const state = (opts.services as { connection?: unknown }).connection;
      if (typeof state === 'string') res.write(`data: ${JSON.stringify({ type: 'connection', state })}\n\n`);
      streams.add(res);
      const off = opts.services.onEvent((e: TerminalEvent) => res.write(`data: ${JSON.stringify(e)}\n\n`));
      const ka = setInterval(() => res.write(': keep-alive\n\n'), opts.keepAliveMs ?? 15_000);
      req.on('close', () => { off(); clearInterval(ka); streams.delete(res); });
      return;
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

  let port = 0;
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
    serveStatic(req, res, url.pathname);
  });
  server.keepAliveTimeout = 5_000;

  // Loopback only: the API is the cashier's till.
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/#secret=${secret}`,
    origin,
    secret,
    close: () => new Promise<void>((ok) => {
      for (const s of streams) s.end();
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}
