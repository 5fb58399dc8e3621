/**
 * The relay's HTTP server (plain node:http): routes of contract §2 plus extensions, the
 * WebSocket upgrade, and graceful shutdown (stop accepting, finish in-flight work, close
 * the database).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Credentials } from '../wechatpay/credentials';
import type { OrderState } from '../contracts/relay-api';
import { ORDER_STATES } from '../contracts/relay-api';
import { beijingDate, isCalendarDate } from '../wechatpay/time';
import type { Authenticator } from './auth';
import type { BillService } from './bills';
import type { CounterRoutes } from './counter-routes';
import { validateBillDate } from './bills';
import type { RelayStore } from './repo-types';
import { BadRequest, RelayError } from './errors';
import type { EventHub } from './events';
import type { Logger } from './log';
import type { NotificationHandler } from './notify';
import type { OrderService } from './orders';
import type { Reconciler } from './reconcile';
import type { RefundService } from './refunds';
import { readBody } from './body';
import { validIdempotencyKey } from './validate';

export interface RelayParts {
  store: RelayStore;
  auth: Authenticator;
  orders: OrderService;
  notify: NotificationHandler;
  hub: EventHub;
  reconciler: Reconciler;
  bills: BillService;
  /** Refunds (refunds.ts); optional so older wiring still builds. */
  refunds?: RefundService;
  credentials: Credentials;
  log: Logger;
  /** Counter operations: timeline, shifts, reports, manager PIN (counter-routes.ts). */
  counter?: CounterRoutes;
  /** RELAY_HEADERS_TIMEOUT_MS, RELAY_BODY_TIMEOUT_MS, RELAY_MAX_CONNECTIONS (defaults as there). */
  limits?: Partial<ServerLimits>;
}

export interface ServerLimits {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxConnections: number;
}

const DEFAULT_LIMITS: ServerLimits = { headersTimeoutMs: 10_000, bodyTimeoutMs: 5_000, maxConnections: 4096 };

const JSON_LIMIT = 65_536;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  // Already answered (408 BODY_TIMEOUT) or the client is gone.
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  // A JSON route takes JSON only: a form or text/plain post (what a cross-site page can send
  // without a preflight) is refused before its body is read.
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !(type === '' && Number(req.headers['content-length'] ?? 0) === 0 && !req.headers['transfer-encoding'])) {
    throw new RelayError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
  }
  const raw = await readBody(req, JSON_LIMIT);
  if (raw.length === 0) return {};
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new BadRequest('body', 'is not valid JSON');
  }
}

function dayStart(field: string, v: string | null): number | undefined {
  if (v === null) return undefined;
  // Date.parse rolls 2026-02-30 over to March: only real calendar days pass.
  if (!isCalendarDate(v)) throw new BadRequest(field, 'must be a calendar day YYYY-MM-DD');
  return Date.parse(`${v}T00:00:00+08:00`);
}

function intParam(field: string, v: string | null, min: number, max: number): number | undefined {
  if (v === null) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new BadRequest(field, `must be an integer from ${min} to ${max}`);
  return Number(v);
}

export class RelayServer {
  readonly http: Server;
  private inflight = 0;
  private idle: (() => void) | null = null;
  private stopping = false;
  private readonly bodyTimeoutMs: number;

  constructor(private readonly p: RelayParts) {
    const limits = { ...DEFAULT_LIMITS, ...p.limits };
    this.bodyTimeoutMs = limits.bodyTimeoutMs;
    // Headers (and an idle new connection's first request) must arrive within headersTimeout;
    // Node checks these every connectionsCheckingInterval, so that is kept short.
    this.http = createServer({
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.headersTimeoutMs + limits.bodyTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    }, (req, res) => this.dispatch(req, res));
    this.http.keepAliveTimeout = 5000;
    // Beyond the cap a new connection is closed at once; the ones open keep working. Each
    // connection is a file descriptor: the open-file limit must be above this (README).
    this.http.maxConnections = limits.maxConnections;
    this.http.on('upgrade', (req, socket, head) => {
      if (this.stopping) return socket.destroy();
      p.hub.handleUpgrade(req, socket, head);
    });
  }

  listen(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        const a = this.http.address() as AddressInfo;
        const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        resolve(`http://${h}:${a.port}`);
      });
    });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    if (this.stopping) {
      res.setHeader('Connection', 'close');
      return sendJson(res, 503, { code: 'SHUTTING_DOWN', message: 'relay is shutting down' });
    }
    this.inflight++;
    this.bodyDeadline(req, res);
    this.route(req, res)
      .catch(async (err) => {
        if (err instanceof RelayError) return sendJson(res, err.status, err.body());
        this.p.log.error({ err: (err as Error).message, path: req.url?.split('?')[0] }, 'request failed');
        // A lost database is the relay's outage, not a bug: 503 says "try again shortly".
        const db = await this.p.store.health().catch(() => ({ ok: false }));
        if (!db.ok) return sendJson(res, 503, { code: 'DATABASE_UNAVAILABLE', message: 'the relay cannot reach its database; try again shortly' });
        sendJson(res, 500, { code: 'INTERNAL', message: 'internal error' });
      })
      .finally(() => {
        if (--this.inflight === 0 && this.idle) this.idle();
      });
  }

  /**
   * A body (a notification's above all: WeChat Pay waits 5 s for the answer) must arrive
   * within RELAY_BODY_TIMEOUT_MS: a trickled one is answered 408 BODY_TIMEOUT and its
   * connection closed, so it holds neither a handler nor a socket for minutes.
   */
  private bodyDeadline(req: IncomingMessage, res: ServerResponse): void {
    if (req.complete) return;
    const timer = setTimeout(() => {
      if (req.complete) return;
      req.pause();
      if (!res.headersSent) {
        res.setHeader('Connection', 'close');
        const body = { code: 'BODY_TIMEOUT', message: `the request body did not arrive within ${this.bodyTimeoutMs} ms` };
        const text = JSON.stringify(req.url === '/wechatpay/notify' ? { code: 'FAIL', message: body.message } : body);
        res.writeHead(408, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
        res.end(text, () => req.socket.destroy());
      } else {
        req.socket.destroy();
      }
    }, this.bodyTimeoutMs);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    req.once('close', () => clearTimeout(timer));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = this.p;
    const method = req.method ?? 'GET';
    // The hot path (WeChat Pay notifications) skips URL parsing.
    const path = req.url === '/wechatpay/notify' ? req.url : new URL(req.url ?? '/', 'http://relay').pathname;
    if (path === '/wechatpay/notify') {
      if (method !== 'POST') throw new RelayError(405, 'METHOD_NOT_ALLOWED', 'POST only');
      const out = await p.notify.handle(req);
      if (out.body) return sendJson(res, out.status, out.body);
      if (res.headersSent || res.destroyed) return;
      res.writeHead(out.status);
      res.end();
      return;
    }
    if (path === '/healthz' && method === 'GET') {
      // The database is part of the relay's health: without it nothing can be sold or applied.
      const database = await p.store.health();
      return sendJson(res, database.ok ? 200 : 503, { ok: database.ok, database });
    }
    const url = new URL(req.url ?? '/', 'http://relay');
    if (!path.startsWith('/v1/')) throw new RelayError(404, 'NOT_FOUND', `no route ${method} ${path}`);
    const auth = req.headers.authorization;
    // A cashier terminal unlocked with the manager PIN (pin.ts) passes manager checks with this.
    const elev = req.headers['x-manager-elevation'];
    const q = url.searchParams;

    if (path === '/v1/events') {
      await p.auth.require(auth);
      throw new RelayError(426, 'UPGRADE_REQUIRED', '/v1/events is a WebSocket: send Upgrade: websocket');
    }
    if (path === '/v1/me' && method === 'GET') {
      const who = await p.auth.require(auth);
      return sendJson(res, 200, { terminal: who.name, role: who.role });
    }
    if (path === '/v1/merchants' && method === 'GET') {
      await p.auth.require(auth);
      // Extension `has_keys`: whether that merchant can act for itself here (contract §1.1).
      return sendJson(res, 200, { sub_merchants: p.credentials.subMerchants.map((s) => ({ ...s, has_keys: p.credentials.participants.has(s.mchid) })) });
    }
    if (path === '/v1/orders' && method === 'POST') {
      const who = await p.auth.require(auth);
      const key = validIdempotencyKey(req.headers['idempotency-key']);
      const body = await jsonBody(req);
      return sendJson(res, 201, await p.orders.create(who.name, body, key));
    }
    if (path === '/v1/orders' && method === 'GET') {
      await p.auth.require(auth);
      const state = q.get('state');
      if (state !== null && !ORDER_STATES.includes(state as OrderState)) throw new BadRequest('state', `must be one of ${ORDER_STATES.join(', ')}`);
      const orders = await p.store.orders.list({
        state: (state as OrderState | null) ?? undefined,
        olderThanMinutes: intParam('older_than_minutes', q.get('older_than_minutes'), 0, 10_000_000),
        q: q.get('q') || undefined,
        dateStartMs: dayStart('date', q.get('date')),
        terminal: q.get('terminal') || undefined,
        open: q.get('open') === '1',
        limit: intParam('limit', q.get('limit'), 1, 1000) ?? 200,
      });
      return sendJson(res, 200, { orders });
    }
    const rm = /^\/v1\/orders\/([0-9A-Za-z_-]{1,64})\/refunds$/.exec(path);
    if (rm && method === 'POST' && p.refunds) {
      const who = await p.auth.require(auth, 'manager', elev);
      const key = validIdempotencyKey(req.headers['idempotency-key']);
      const body = await jsonBody(req);
      return sendJson(res, 201, await p.refunds.create(who.name, rm[1]!, body, key));
    }
    if (path === '/v1/refunds' && method === 'GET' && p.refunds) {
      await p.auth.require(auth, 'manager', elev);
      const status = q.get('status');
      if (status !== null && !['PROCESSING', 'SUCCESS', 'CLOSED', 'ABNORMAL'].includes(status)) throw new BadRequest('status', 'must be one of PROCESSING, SUCCESS, CLOSED, ABNORMAL');
      const start = dayStart('date', q.get('date') ?? beijingDate(Date.now()))!;
      return sendJson(res, 200, { refunds: await p.refunds.list(start, status, intParam('limit', q.get('limit'), 1, 1000) ?? 500) });
    }
    const m = /^\/v1\/orders\/([0-9A-Za-z_-]{1,64})(\/close)?$/.exec(path);
    if (m) {
      const no = m[1]!;
      if (!m[2] && method === 'GET') {
        await p.auth.require(auth);
        return sendJson(res, 200, q.get('sync') === '1' ? await p.orders.sync(no) : await p.orders.get(no));
      }
      if (m[2] && method === 'POST') {
        const who = await p.auth.require(auth, 'manager', elev);
        return sendJson(res, 200, await p.orders.close(no, who.name));
      }
    }
    if (path === '/v1/bills/trade' && method === 'POST') {
      const who = await p.auth.require(auth, 'manager', elev);
      const date = validateBillDate(await jsonBody(req));
      return sendJson(res, 200, await p.bills.run(date, who.name));
    }
    if (path === '/v1/alerts' && method === 'GET') {
      await p.auth.require(auth, 'manager', elev);
      return sendJson(res, 200, { alerts: await p.store.alerts.list(intParam('limit', q.get('limit'), 1, 1000) ?? 200) });
    }
    if (path === '/v1/takings' && method === 'GET') {
      await p.auth.require(auth);
      const date = q.get('date') ?? beijingDate(Date.now());
      const start = dayStart('date', date)!;
      // Sales counted once each (not once per sub-order): see reports.ts.
      if (p.counter) return sendJson(res, 200, { date, ...(await p.counter.reports.takings(start)) });
      const names = new Map(p.credentials.subMerchants.map((s) => [s.mchid, s.name]));
      const rows = new Map((await p.store.orders.takings(start)).map((r) => [r.mchid, r]));
      const merchants = p.credentials.subMerchants.map((s) => ({ mchid: s.mchid, name: s.name, amount: rows.get(s.mchid)?.amount ?? 0, count: rows.get(s.mchid)?.count ?? 0 }));
      for (const [mchid, r] of rows) if (!names.has(mchid)) merchants.push({ mchid, name: mchid, amount: r.amount, count: r.count });
      return sendJson(res, 200, { date, merchants });
    }
    if (p.counter && (await p.counter.handle(req, res, path, q, sendJson, jsonBody))) return;
    throw new RelayError(404, 'NOT_FOUND', `no route ${method} ${path}`);
  }

  /** Stop accepting, let in-flight requests and reconciler checks finish, close the database. */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const closed = new Promise<void>((r) => this.http.close(() => r()));
    this.http.closeIdleConnections();
    this.p.hub.close();
    await this.p.reconciler.stop();
    await this.p.refunds?.stop();
    if (this.inflight > 0) {
      await Promise.race([new Promise<void>((r) => { this.idle = r; }), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    }
    this.http.closeAllConnections();
    await closed;
    await this.p.store.close();
    this.p.log.info('relay stopped');
    this.p.log.flush?.();
  }
}
