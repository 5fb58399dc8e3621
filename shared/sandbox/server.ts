/**
 * The simulator as a real HTTP server (node:http): the APIv3 endpoints the product uses, checked
 * and signed as WeChat Pay does, plus the buyer/test endpoints under /sandbox.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chmodSync } from 'node:fs';
import { createNonce, signBody } from '../wechatpay/sign';
import { beijingDate, formatBeijing, isCalendarDate } from '../wechatpay/time';
import { BodyTooLargeError, readRawBody } from '../util/raw-body';
import { encryptResource } from '../wechatpay/aead';
import { ApiFailure } from './errors';
import { loadSandboxConfig, type MerchantKeys, type SandboxConfig } from './config';
import { StateStore, type Synchronous } from './state';
import { answeringMerchant, checkRequest, responseKey } from './auth';
import { parseAuthorization } from '../wechatpay/sign';
import { Orders, type PayOutcome } from './orders';
import { Notifier } from './notifier';
import { Bills } from './bills';
import { Refunds, refundsOf } from './refunds';
import { DEFAULT_SLOW_MS, Faults, type Fault } from './faults';
import { renderPage } from './page';

export interface SandboxOptions {
  /** The folder given to `init` (holds `sandbox/` and `merchant/`). */
  dir: string;
  host?: string;
  port?: number;
  /** Divides the notification retry schedule (60 → 60× faster). */
  timeScale?: number;
  /** Minimum order age before a close is accepted (default 300). */
  closeMinAgeSeconds?: number;
  /** SQLite synchronous mode of the state database: NORMAL (default; survives kill -9) or FULL (also a power cut). */
  dbSynchronous?: Synchronous;
  /** Real milliseconds from a refund's PROCESSING to its final status (default 2000). */
  refundDelayMs?: number;
  /** Minimum seconds between two refunds of one sub-order (default 60, as WeChat Pay). */
  refundMinIntervalSeconds?: number;
  /** Reply timeout for notifications (default 5000 ms, as WeChat Pay). */
  notifyReplyTimeoutMs?: number;
  log?: (event: Record<string, unknown>) => void;
  /**
   * Extra names (`name` or `name:port`) accepted in the `Host` header besides loopback and the
   * listening address, e.g. a LAN address when a real phone opens the page (SANDBOX_ALLOWED_HOSTS).
   */
  allowedHosts?: string[];
}

export interface RunningSandbox {
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 256 * 1024;
/** Entries kept by the request log (`GET /sandbox/requests`), oldest dropped first. */
const MAX_REQUEST_LOG = 2000;

/** One APIv3 request as the sandbox saw it: who claimed to sign it, and whether that held. */
export interface RequestLogEntry {
  at: string;
  method: string;
  /** Path and query exactly as received (what was signed). */
  url: string;
  /** The Authorization's mchid and serial_no, as claimed (null when absent or unparsable). */
  mchid: string | null;
  serial_no: string | null;
  /** The signature verified with that merchant's API certificate. */
  authenticated: boolean;
  status: number;
  code?: string;
}
const MAX_CLOCK_OFFSET_SECONDS = 10 * 365 * 86_400;

interface Reply {
  status: number;
  body?: unknown;
  /** Raw bytes (bill file): sent unsigned as WeChat Pay does. */
  file?: { data: Buffer; gzip: boolean };
}

const readBody = (req: IncomingMessage): Promise<Buffer> => readRawBody(req, MAX_BODY);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ApiFailure(400, 'PARAM_ERROR', `请求体不是合法的JSON (body is not valid JSON: ${(err as Error).message})`);
  }
}

/** A path segment, decoded; broken percent-encoding is the caller's mistake (400), not ours (500). */
function pathParam(segment: string, field = 'combine_out_trade_no'): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiFailure(400, 'PARAM_ERROR', `路径参数编码错误 (path segment ${segment} is not valid percent-encoding)`, { field, location: 'path' });
  }
}

/** A close's answer: 204, or 202 USER_PAYING while the buyer is paying (addendum). */
function closeReply(r: 'CLOSED' | 'USER_PAYING'): Reply {
  return r === 'USER_PAYING' ? { status: 202, body: { code: 'USER_PAYING', message: '用户支付中，请稍后查询订单状态' } } : { status: 204 };
}

/** A folder from an older init was world-readable: the APIv3 keys in sandbox.json are secrets. */
function tighten(sandboxDir: string): void {
  try {
    chmodSync(sandboxDir, 0o700);
    chmodSync(join(sandboxDir, 'sandbox.json'), 0o600);
  } catch {
    // not ours to change (another owner, a read-only copy): serving still works
  }
}

export class SandboxServer {
  readonly cfg: SandboxConfig;
  readonly store: StateStore;
  readonly orders: Orders;
  readonly notifier: Notifier;
  readonly bills: Bills;
  readonly refunds: Refunds;
  readonly faults = new Faults();
  /** In memory only: a test's view of who signed what (lost at restart, by design). */
  readonly requests: RequestLogEntry[] = [];
  private readonly closeMinAge: number;

  constructor(private readonly opts: SandboxOptions) {
    const sandboxDir = join(opts.dir, 'sandbox');
    this.cfg = loadSandboxConfig(sandboxDir);
    tighten(sandboxDir);
    this.store = new StateStore(sandboxDir, { synchronous: opts.dbSynchronous });
    this.orders = new Orders(this.cfg, this.store);
    this.bills = new Bills(this.cfg, this.store, this.orders);
    this.notifier = new Notifier(this.cfg, this.store, { timeScale: opts.timeScale ?? 1, replyTimeoutMs: opts.notifyReplyTimeoutMs, log: opts.log });
    this.closeMinAge = opts.closeMinAgeSeconds ?? 300;
    this.refunds = new Refunds(this.cfg, this.store, this.orders, this.notifier, () => this.now(), { delayMs: opts.refundDelayMs, minIntervalSeconds: opts.refundMinIntervalSeconds });
  }

  /** The business clock: real time shifted by the offset set through /sandbox/control/clock. */
  now(): number {
    return Date.now() + this.store.state.clock_offset_seconds * 1000;
  }

  /** `Host` values accepted (set once listening): loopback names and the listening address, with its port. */
  private hosts = new Set<string>();
  private port = 0;

  setListening(address: string, port: number): void {
    this.port = port;
    const withPort = (n: string) => (port === 80 ? [`${n}:${port}`, n] : [`${n}:${port}`]);
    const own = address.includes(':') ? `[${address}]` : address;
    const extra = (this.opts.allowedHosts ?? []).map((h) => h.toLowerCase()).flatMap((h) => (/^[^[]*:\d+$|\]:\d+$/.test(h) ? [h] : withPort(h)));
    this.hosts = new Set([...['127.0.0.1', 'localhost', '[::1]', own].flatMap(withPort), ...extra]);
  }

  /**
   * DNS-rebinding guard (as the web host's): a page served under another name that resolves to
   * 127.0.0.1 must not pay or read orders. 421 for any other `Host`.
   */
  hostAllowed(header: string | undefined): boolean {
    return header !== undefined && this.hosts.has(header.toLowerCase());
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.hostAllowed(req.headers.host)) {
      this.json(res, 421, { code: 'MISDIRECTED_REQUEST', message: `Host ${req.headers.host ?? '(none)'} is not this sandbox's address; use http://127.0.0.1:${this.port}` });
      return;
    }
    const target = req.url ?? '/';
    const u = new URL(target, 'http://sandbox.invalid');
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      if (u.pathname.startsWith('/v3/')) return await this.api(req, res, method, target, u);
      if (u.pathname === '/' || u.pathname === '/sandbox/') {
        res.writeHead(302, { Location: '/sandbox' }).end();
        return;
      }
      if (u.pathname === '/sandbox' || u.pathname.startsWith('/sandbox/')) return await this.sandbox(req, res, method, u);
      this.json(res, 404, { code: 'NOT_FOUND', message: `no route ${method} ${u.pathname}` });
    } catch (err) {
      if (res.headersSent) return;
      if (err instanceof ApiFailure) return this.json(res, err.status, err.body());
      if (err instanceof BodyTooLargeError) return this.json(res, 413, { code: 'PARAM_ERROR', message: `body larger than ${MAX_BODY} bytes` });
      this.opts.log?.({ event: 'error', error: String((err as Error).stack ?? err) });
      this.json(res, 500, { code: 'SYSTEM_ERROR', message: '系统错误' });
    }
  }

  private json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...extra });
    res.end(text);
  }

  // ---- APIv3 -------------------------------------------------------------------------------

  private async api(req: IncomingMessage, res: ServerResponse, method: string, target: string, u: URL): Promise<void> {
    const requestId = `08${Math.floor(Date.now() / 1000).toString(16).toUpperCase()}${createNonce(24)}-0`;
    let fault: Fault | undefined;
    let reply: Reply;
    let authenticated = false;
    try {
      const route = this.route(method, u.pathname);
      const raw = await readBody(req);
      fault = this.faults.take(method, u.pathname, req.headers['x-sandbox-fault'] as string | undefined);
      if (fault?.kind === 'SYSTEM_ERROR') throw new ApiFailure(500, 'SYSTEM_ERROR', '系统错误 (injected fault)');
      if (fault?.kind === 'FREQUENCY_LIMITED') throw new ApiFailure(429, 'FREQUENCY_LIMITED', '频率超限 (injected fault)');
      const { mchid } = checkRequest(this.cfg, method, target, req.headers, raw);
      authenticated = true;
      let body: unknown;
      if (method === 'POST') {
        const ct = req.headers['content-type'] ?? '';
        if (!/^application\/json\b/i.test(ct)) throw new ApiFailure(400, 'INVALID_REQUEST', `Content-Type应为application/json (got ${ct || 'none'})`);
        body = parseJson(raw);
      }
      reply = route(body, mchid, u, req);
    } catch (err) {
      if (!(err instanceof ApiFailure)) throw err;
      reply = { status: err.status, body: err.body() };
    }
    if (fault?.kind === 'SLOW') await sleep(fault.delay_ms ?? DEFAULT_SLOW_MS);
    this.opts.log?.({ event: 'api', method, url: target, status: reply.status, fault: fault?.kind });
    this.logRequest(method, target, req, authenticated, reply);
    if (reply.file) {
      // Bill downloads carry no signature headers (§6.2): the SHA1 from apply is the check.
      res.writeHead(200, { 'Content-Type': reply.file.gzip ? 'application/gzip' : 'application/octet-stream', 'Content-Length': reply.file.data.length, 'Request-ID': requestId });
      res.end(reply.file.data);
      return;
    }
    const text = reply.body === undefined ? '' : JSON.stringify(reply.body);
    // Signed with the keys of the merchant the request names (its own WeChat Pay public key or
    // platform certificates), the initiator's when it names none WeChat Pay knows.
    const key = responseKey(answeringMerchant(this.cfg, req.headers), req.headers['wechatpay-serial'] as string | undefined);
    const signed = signBody(key.key, key.serial, text);
    if (fault?.kind === 'BAD_SIGNATURE') {
      // A valid-looking signature over different bytes: only a verifier catches it.
      signed['Wechatpay-Signature'] = signBody(key.key, key.serial, text + ' ')['Wechatpay-Signature'];
    }
    const headers: Record<string, string | number> = { ...signed, 'Request-ID': requestId, 'Content-Length': Buffer.byteLength(text) };
    if (text) headers['Content-Type'] = 'application/json; charset=utf-8';
    res.writeHead(reply.status, headers);
    res.end(text);
  }

  /** Resolves the handler, or throws 404 for an unknown path (before any signature check). */
  private logRequest(method: string, url: string, req: IncomingMessage, authenticated: boolean, reply: Reply): void {
    const auth = parseAuthorization(req.headers.authorization);
    const code = reply.body && typeof reply.body === 'object' && 'code' in reply.body ? String((reply.body as { code: unknown }).code) : undefined;
    this.requests.push({ at: new Date().toISOString(), method, url, mchid: auth?.mchid ?? null, serial_no: auth?.serial_no ?? null, authenticated, status: reply.status, ...(code ? { code } : {}) });
    if (this.requests.length > MAX_REQUEST_LOG) this.requests.splice(0, this.requests.length - MAX_REQUEST_LOG);
  }

  private route(method: string, path: string): (body: unknown, mchid: string, u: URL, req: IncomingMessage) => Reply {
    const COMBINE = '/v3/combine-transactions/out-trade-no/';
    const need = (m: string) => {
      if (method !== m) throw new ApiFailure(405, 'METHOD_NOT_ALLOWED', `${path} accepts ${m} only`);
    };
    if (path === '/v3/combine-transactions/native') {
      need('POST');
      return (body, mchid) => ({ status: 200, body: this.orders.create(body, mchid, this.now()) });
    }
    if (path.startsWith(COMBINE)) {
      const rest = path.slice(COMBINE.length);
      const closeMatch = /^([^/]+)\/close$/.exec(rest);
      if (closeMatch) {
        need('POST');
        const no = pathParam(closeMatch[1]!);
        return (body, mchid) => closeReply(this.orders.close(no, body, mchid, this.closeMinAge, this.now()));
      }
      if (/^[^/]+$/.test(rest)) {
        need('GET');
        const no = pathParam(rest);
        return (_b, mchid) => ({ status: 200, body: this.orders.query(no, mchid) });
      }
    }
    const BASIC = '/v3/pay/transactions/';
    if (path === '/v3/pay/transactions/native') {
      need('POST');
      return (body, mchid) => ({ status: 200, body: this.orders.createBasic(body, mchid, this.now()) });
    }
    if (path.startsWith(BASIC + 'out-trade-no/')) {
      const rest = path.slice((BASIC + 'out-trade-no/').length);
      const closeMatch = /^([^/]+)\/close$/.exec(rest);
      if (closeMatch) {
        need('POST');
        const no = pathParam(closeMatch[1]!, 'out_trade_no');
        return (body, mchid) => closeReply(this.orders.closeBasic(no, body, mchid, this.closeMinAge, this.now()));
      }
      if (/^[^/]+$/.test(rest)) {
        need('GET');
        const no = pathParam(rest, 'out_trade_no');
        return (_b, mchid, u) => ({ status: 200, body: this.orders.queryBasic(no, u.searchParams, mchid) });
      }
    }
    if (path.startsWith(BASIC + 'id/')) {
      const rest = path.slice((BASIC + 'id/').length);
      if (/^[^/]+$/.test(rest)) {
        need('GET');
        const tx = pathParam(rest, 'transaction_id');
        return (_b, mchid, u) => ({ status: 200, body: this.orders.queryBasicById(tx, u.searchParams, mchid) });
      }
    }
    const REFUNDS = '/v3/refund/domestic/refunds';
    if (path === REFUNDS) {
      need('POST');
      return (body, mchid) => ({ status: 200, body: this.refunds.create(body, mchid) });
    }
    if (path.startsWith(REFUNDS + '/') && /^[^/]+$/.test(path.slice(REFUNDS.length + 1))) {
      need('GET');
      const no = pathParam(path.slice(REFUNDS.length + 1), 'out_refund_no');
      return (_b, mchid) => ({ status: 200, body: this.refunds.query(no, mchid) });
    }
    if (path === '/v3/certificates') {
      need('GET');
      return (_b, mchid) => this.certificates(this.cfg.keys.get(mchid)!);
    }
    if (path === '/v3/bill/tradebill') {
      need('GET');
      return (_b, mchid, u, req) => ({ status: 200, body: this.bills.apply(u.searchParams, mchid, `http://${req.headers.host ?? 'localhost'}`, this.now()) });
    }
    if (path === '/v3/billdownload/file') {
      need('GET');
      return (_b, mchid, u) => {
        const d = this.bills.download(u.searchParams, mchid, this.now());
        return { status: 200, file: { data: d.body, gzip: d.gzip } };
      };
    }
    throw new ApiFailure(404, 'NOT_FOUND', `接口不存在 (no APIv3 endpoint ${method} ${path} in the sandbox)`);
  }

  /** `/v3/certificates`: the signer's own platform certificates, encrypted with its APIv3 key; a public-key merchant has none (§2.3). */
  private certificates(m: MerchantKeys): Reply {
    if (m.mode !== 'certificates') {
      throw new ApiFailure(404, 'RESOURCE_NOT_EXISTS', '无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥');
    }
    return {
      status: 200,
      body: {
        data: m.platform.map((p) => ({
          serial_no: p.serial,
          effective_time: p.effectiveTime,
          expire_time: p.expireTime,
          encrypt_certificate: encryptResource(p.pem, m.apiV3Key, 'certificate'),
        })),
      },
    };
  }

  // ---- buyer, page, controls -----------------------------------------------------------------

  private async sandbox(req: IncomingMessage, res: ServerResponse, method: string, u: URL): Promise<void> {
    const path = u.pathname;
    let body: unknown;
    if (method === 'POST' || method === 'DELETE') {
      const raw = await readBody(req);
      // JSON only: a cross-site form post cannot reach these endpoints without a CORS preflight.
      if (method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
        throw new ApiFailure(415, 'INVALID_REQUEST', 'Content-Type must be application/json');
      }
      body = raw.length ? parseJson(raw) : {};
    }
    const b = (body ?? {}) as Record<string, unknown>;
    const key = `${method} ${path}`;
    switch (key) {
      case 'GET /sandbox': {
        const html = await renderPage(this);
        res.writeHead(200, {
          'Content-Type': 'text/html; charset=utf-8',
          'Cache-Control': 'no-store',
          'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'; frame-ancestors 'none'",
        });
        res.end(html);
        return;
      }
      case 'GET /sandbox/requests': {
        // Filters for tests: ?mchid= (who claimed to sign), ?path= (prefix of the request path).
        const mchid = u.searchParams.get('mchid');
        const prefix = u.searchParams.get('path');
        return this.json(res, 200, { requests: this.requests.filter((r) => (!mchid || r.mchid === mchid) && (!prefix || r.url.startsWith(prefix))) });
      }
      case 'GET /sandbox/orders':
        return this.json(res, 200, { orders: this.orderList() });
      case 'GET /sandbox/notifications':
        return this.json(res, 200, {
          deliveries: this.store.state.deliveries,
          pending: this.store.state.pending.map((p) => ({ order: p.order, notification_id: p.notification_id, attempts: p.attempts, next_at: new Date(p.next_at).toISOString() })),
        });
      case 'POST /sandbox/pay':
        return this.json(res, 200, this.pay(b));
      case 'GET /sandbox/control/faults':
        return this.json(res, 200, { faults: this.faults.armed() });
      case 'POST /sandbox/control/faults':
        return this.json(res, 200, { armed: this.faults.arm(b) });
      case 'DELETE /sandbox/control/faults':
        this.faults.clear();
        return this.json(res, 200, { faults: [] });
      case 'GET /sandbox/refunds':
        return this.json(res, 200, { refunds: refundsOf(this.store).map((r) => ({ ...this.refunds.result(r), mchid: r.mchid, reason: r.reason ?? null })) });
      case 'GET /sandbox/control/refund-outcome':
        return this.json(res, 200, { armed: this.refunds.armedOutcomes() });
      case 'POST /sandbox/control/refund-outcome':
        return this.json(res, 200, { armed: this.refunds.arm(b) });
      case 'DELETE /sandbox/control/refund-outcome':
        this.refunds.clearArmed();
        return this.json(res, 200, { armed: [] });
      case 'GET /sandbox/control/clock':
        return this.json(res, 200, this.clock());
      case 'POST /sandbox/control/clock': {
        const off = b.offset_seconds;
        // Bounded: the offset is stored, and a clock beyond what Date can hold would turn every
        // later time (expiry, bill dates, the page) into NaN until the state file is edited.
        if (typeof off !== 'number' || !Number.isFinite(off) || Math.abs(off) > MAX_CLOCK_OFFSET_SECONDS) {
          throw new ApiFailure(400, 'PARAM_ERROR', `offset_seconds must be a number within ±${MAX_CLOCK_OFFSET_SECONDS} (10 years)`, { field: '/offset_seconds' });
        }
        this.store.setClockOffset(off);
        return this.json(res, 200, this.clock());
      }
      case 'POST /sandbox/control/bill-adjust':
        return this.json(res, 200, this.billAdjust(b));
      default:
        throw new ApiFailure(404, 'NOT_FOUND', `no route ${method} ${path}`);
    }
  }

  private clock(): { offset_seconds: number; now: string } {
    return { offset_seconds: this.store.state.clock_offset_seconds, now: formatBeijing(this.now()) };
  }

  orderList(): Record<string, unknown>[] {
    const now = this.now();
    const names = this.cfg.names;
    return this.orders.all().map((o) => {
      return {
        kind: o.kind ?? 'combine',
        combine_out_trade_no: o.combine_out_trade_no,
        mchid: o.request.combine_mchid,
        state: o.state,
        /** Past time_expire and unpaid: the buyer can no longer pay (the state is unchanged). */
        expired: this.orders.expired(o, now),
        code_url: o.code_url,
        total_amount: o.request.sub_orders.reduce((s, x) => s + x.amount.total_amount, 0),
        created_at: formatBeijing(o.created_at),
        expires_at: formatBeijing(o.expires_at),
        paid_at: o.paid_at === undefined ? null : formatBeijing(o.paid_at),
        closed_at: o.closed_at === undefined ? null : formatBeijing(o.closed_at),
        notify_url: o.request.notify_url,
        sub_orders: o.request.sub_orders.map((s, i) => ({
          mchid: s.mchid,
          name: names.get(s.mchid) ?? s.mchid,
          out_trade_no: s.out_trade_no,
          description: s.description,
          amount: s.amount.total_amount,
          transaction_id: o.sub_orders[i]!.transaction_id ?? null,
          trade_state: this.orders.subState(o, i),
        })),
      };
    });
  }

  private pay(b: Record<string, unknown>): Record<string, unknown> {
    if (typeof b.code_url !== 'string' || !b.code_url) throw new ApiFailure(400, 'PARAM_ERROR', 'code_url is required', { field: '/code_url' });
    const outcome = (b.outcome ?? 'SUCCESS') as PayOutcome;
    if (!['SUCCESS', 'USERPAYING', 'PAYERROR'].includes(outcome)) throw new ApiFailure(400, 'PARAM_ERROR', 'outcome must be SUCCESS, USERPAYING or PAYERROR', { field: '/outcome' });
    if (b.notify !== undefined && typeof b.notify !== 'boolean') throw new ApiFailure(400, 'PARAM_ERROR', 'notify must be a boolean', { field: '/notify' });
    for (const k of ['duplicates', 'probes'] as const) {
      const v = b[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 5)) throw new ApiFailure(400, 'PARAM_ERROR', `${k} must be an integer 0..5`, { field: `/${k}` });
    }
    const now = this.now();
    const code = b.code_url;
    // The payment and its pending notification commit together, before the buyer is answered.
    return this.store.transaction(() => {
      const o = this.orders.pay(code, outcome, now);
      if (o.state === 'SUCCESS' && b.notify !== false) {
        // A combine notification concerns the initiator, a basic one its merchant (request.combine_mchid
        // in both): that merchant's keys sign and encrypt it.
        const resource = o.kind === 'basic' ? this.orders.basicResult(o) : this.orders.result(o);
        this.notifier.enqueue(this.cfg.keys.get(o.request.combine_mchid)!, { event_type: 'TRANSACTION.SUCCESS', summary: '支付成功', original_type: 'transaction', resource, label: o.combine_out_trade_no }, o.request.notify_url, now, { probes: b.probes as number | undefined, duplicates: b.duplicates as number | undefined });
      }
      return {
        kind: o.kind ?? 'combine',
        /** The combine number; a basic order's out_trade_no. */
        combine_out_trade_no: o.combine_out_trade_no,
        mchid: o.request.combine_mchid,
        state: o.state,
        sub_orders: o.request.sub_orders.map((s, i) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no, transaction_id: o.sub_orders[i]!.transaction_id ?? null })),
      };
    });
  }

  private billAdjust(b: Record<string, unknown>): Record<string, unknown> {
    if (b.extra !== undefined) {
      const x = b.extra as Record<string, unknown>;
      if (typeof x !== 'object' || x === null) throw new ApiFailure(400, 'PARAM_ERROR', 'extra must be an object', { field: '/extra' });
      if (typeof x.mchid !== 'string' || typeof x.out_trade_no !== 'string') throw new ApiFailure(400, 'PARAM_ERROR', 'extra needs mchid and out_trade_no strings', { field: '/extra' });
      if (typeof x.amount !== 'number' || !Number.isInteger(x.amount) || x.amount <= 0) throw new ApiFailure(400, 'PARAM_ERROR', 'extra.amount must be a positive integer (fen)', { field: '/extra/amount' });
      if (x.bill_date !== undefined && (typeof x.bill_date !== 'string' || !isCalendarDate(x.bill_date))) throw new ApiFailure(400, 'PARAM_ERROR', 'extra.bill_date must be a calendar day yyyy-MM-dd', { field: '/extra/bill_date' });
      const now = this.now();
      const billDate = (x.bill_date as string | undefined) ?? beijingDate(now);
      const time = x.bill_date ? Date.parse(`${billDate}T12:00:00+08:00`) : now;
      const extra = {
        mchid: x.mchid,
        out_trade_no: x.out_trade_no,
        amount: x.amount,
        attach: typeof x.attach === 'string' ? x.attach : undefined,
        bill_date: billDate,
        time,
        transaction_id: `4200009999${billDate.replace(/-/g, '')}${createNonce(10).replace(/\D/g, '0')}`,
      };
      this.store.addExtra(extra);
      return { extra };
    }
    if (typeof b.out_trade_no !== 'string') throw new ApiFailure(400, 'PARAM_ERROR', 'out_trade_no (a sub-order number) or extra is required', { field: '/out_trade_no' });
    if (b.amount !== undefined && (typeof b.amount !== 'number' || !Number.isInteger(b.amount) || b.amount < 0)) throw new ApiFailure(400, 'PARAM_ERROR', 'amount must be an integer number of fen', { field: '/amount' });
    if (b.drop !== undefined && typeof b.drop !== 'boolean') throw new ApiFailure(400, 'PARAM_ERROR', 'drop must be a boolean', { field: '/drop' });
    if (b.amount === undefined && !b.drop) throw new ApiFailure(400, 'PARAM_ERROR', 'give amount or drop:true', { field: '/amount' });
    if (!this.orders.bySubOrder(b.out_trade_no)) throw new ApiFailure(404, 'ORDER_NOT_EXIST', `no sub-order ${b.out_trade_no}`);
    const adj = { out_trade_no: b.out_trade_no, amount: b.amount as number | undefined, drop: b.drop as boolean | undefined };
    this.store.putAdjustment(adj);
    return { adjustment: adj };
  }
}

export async function startSandbox(opts: SandboxOptions): Promise<RunningSandbox> {
  const sb = new SandboxServer(opts);
  const server = createServer((req, res) => {
    void sb.handle(req, res);
  });
  server.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
    });
  } catch (err) {
    sb.store.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  sb.setListening(addr.address, addr.port);
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  sb.notifier.start();
  sb.refunds.start();
  opts.log?.({ event: 'listening', url, mode: sb.cfg.initiator.mode });
  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= (async () => {
        sb.refunds.close();
        await sb.notifier.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        sb.store.close();
      })();
      return closing;
    },
  };
}
