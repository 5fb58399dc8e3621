/**
 * The terminal's view of the relay (contract §2 + extensions): typed HTTP calls, and the event
 * stream over WebSocket with reconnect/backoff and catch-up (`?since=<cursor>`), so a terminal that
 * was offline ends up with the right order states.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type {
  AlertsResponse, CreateOrderRequest, CreateRefundRequest, ErrorBody, Refund, MerchantsResponse, Order, OrdersResponse, ReconciliationReport, RelayEvent,
} from '../contracts/relay-api';
import type { ConnectionState, DailyTakings, OrderQuery, Role } from '../contracts/terminal-api';
import type { DayEndReport, ManagerElevation, ManagerPinStatus, OrderEventRequest, OrderTimeline, Shift, ShiftReport } from '../contracts/counter-api';
import { TerminalError } from './errors';

export interface RelayClientOptions {
  baseUrl: string;
  token: string;
  /** Manager calls use this token when set (a cashier terminal unlocked for a manager). */
  managerToken?: string;
  /** Without a manager token: a live manager-PIN elevation sent with manager calls (`X-Manager-Elevation`). */
  elevation?: () => string | null;
  timeoutMs?: number;
}

export class RelayClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(private readonly opts: RelayClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  private async call<T>(method: string, path: string, opts: { body?: unknown; manager?: boolean; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<T> {
    if (!this.baseUrl) throw new TerminalError('UNCONFIGURED', 'relay_url is not set in the settings', { field: 'relay_url' });
    const token = opts.manager && this.opts.managerToken ? this.opts.managerToken : this.opts.token;
    if (!token) throw new TerminalError('UNCONFIGURED', 'terminal_token is not set in the settings', { field: 'terminal_token' });
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json', ...opts.headers };
    const elevation = opts.manager && !this.opts.managerToken ? this.opts.elevation?.() : null;
    if (elevation) headers['x-manager-elevation'] = elevation;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.baseUrl + path, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs) });
      // The deadline also covers the body: a relay stalling or dropping mid-answer is a transport failure too.
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError') throw new TerminalError('RELAY_TIMEOUT', `relay did not answer ${method} ${path} in time`);
      throw new TerminalError('RELAY_UNREACHABLE', `relay unreachable at ${this.baseUrl}: ${e.cause?.code ?? e.message}`);
    }
    let json: unknown = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        throw new TerminalError('RELAY_BAD_RESPONSE', `relay answered ${res.status} with non-JSON to ${method} ${path}`);
      }
    }
    if (!res.ok) {
      const e = (json ?? {}) as Partial<ErrorBody>;
      throw new TerminalError(e.code ?? `HTTP_${res.status}`, e.message ?? `relay answered ${res.status}`, {
        field: e.field, retry_after_seconds: e.retry_after_seconds, status: res.status,
      });
    }
    return json as T;
  }

  me(): Promise<{ terminal: string; role: Role }> {
    return this.call('GET', '/v1/me');
  }

  managerMe(): Promise<{ terminal: string; role: Role }> {
    return this.call('GET', '/v1/me', { manager: true });
  }

  async merchants(): Promise<MerchantsResponse> {
    return this.call('GET', '/v1/merchants');
  }

  createOrder(req: CreateOrderRequest, idempotencyKey: string): Promise<Order> {
    // Creation waits for WeChat Pay (with retries): allow longer than ordinary calls.
    return this.call('POST', '/v1/orders', { body: req, headers: { 'idempotency-key': idempotencyKey }, timeoutMs: Math.max(this.timeoutMs, 30_000) });
  }

  getOrder(no: string, sync = false): Promise<Order> {
    return this.call('GET', `/v1/orders/${encodeURIComponent(no)}${sync ? '?sync=1' : ''}`);
  }

  async listOrders(q: OrderQuery & { open?: boolean; terminal?: string }): Promise<Order[]> {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) {
      if (v === undefined || v === null || v === '') continue;
      if (k === 'open') { if (v) p.set('open', '1'); continue; }
      p.set(k, String(v));
    }
    const qs = p.toString();
    const r = await this.call<OrdersResponse>('GET', `/v1/orders${qs ? `?${qs}` : ''}`);
    return r.orders;
  }

  refund(no: string, req: CreateRefundRequest, idempotencyKey: string): Promise<Refund> {
    return this.call('POST', `/v1/orders/${encodeURIComponent(no)}/refunds`, { manager: true, body: req, headers: { 'idempotency-key': idempotencyKey } });
  }

  closeOrder(no: string): Promise<Order> {
    return this.call('POST', `/v1/orders/${encodeURIComponent(no)}/close`, { manager: true, body: {} });
  }

  reconcile(billDate: string): Promise<ReconciliationReport> {
    return this.call('POST', '/v1/bills/trade', { manager: true, body: { bill_date: billDate }, timeoutMs: 120_000 });
  }

  async alerts(): Promise<AlertsResponse> {
    return this.call('GET', '/v1/alerts', { manager: true });
  }

  takings(date: string): Promise<DailyTakings> {
    return this.call('GET', `/v1/takings?date=${encodeURIComponent(date)}`);
  }

  orderTimeline(no: string): Promise<OrderTimeline> {
    return this.call('GET', `/v1/orders/${encodeURIComponent(no)}/timeline`);
  }

  orderEvent(no: string, e: OrderEventRequest): Promise<{ ok: true }> {
    return this.call('POST', `/v1/orders/${encodeURIComponent(no)}/events`, { body: e });
  }

  openShift(cashier: string): Promise<Shift> {
    return this.call('POST', '/v1/shifts', { body: { cashier } });
  }

  async currentShift(): Promise<Shift | null> {
    return (await this.call<{ shift: Shift | null }>('GET', '/v1/shifts/current')).shift;
  }

  closeShift(id: number): Promise<ShiftReport> {
    // Its own shift: as this terminal (the shift names who closed it).
    return this.call('POST', `/v1/shifts/${id}/close`, { body: {} });
  }

  shiftReport(id: number): Promise<ShiftReport> {
    return this.call('GET', `/v1/shifts/${id}/report`, { manager: true });
  }

  dayEnd(date: string): Promise<DayEndReport> {
    return this.call('GET', `/v1/reports/day-end?date=${encodeURIComponent(date)}`, { manager: true });
  }

  /** A report's CSV as the relay made it (bytes decoded as UTF-8: the BOM stays as U+FEFF). */
  async csv(path: string): Promise<string> {
    const token = this.opts.managerToken || this.opts.token;
    if (!this.baseUrl || !token) throw new TerminalError('UNCONFIGURED', 'relay_url or terminal_token is not set in the settings', { field: 'relay_url' });
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/csv' };
    const elevation = !this.opts.managerToken ? this.opts.elevation?.() : null;
    if (elevation) headers['x-manager-elevation'] = elevation;
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new TerminalError('RELAY_UNREACHABLE', `relay unreachable at ${this.baseUrl}: ${(err as Error).message}`);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (!res.ok) {
      let e: Partial<ErrorBody> = {};
      try { e = JSON.parse(bytes.toString('utf8')) as ErrorBody; } catch { /* not JSON */ }
      throw new TerminalError(e.code ?? `HTTP_${res.status}`, e.message ?? `relay answered ${res.status}`, { field: e.field, status: res.status });
    }
    // TextDecoder would drop the BOM; Buffer keeps it as U+FEFF.
    return bytes.toString('utf8');
  }

  pinStatus(): Promise<ManagerPinStatus> {
    return this.call('GET', '/v1/manager/pin', { manager: true });
  }

  setPin(pin: string): Promise<ManagerPinStatus> {
    // The PIN is the manager's own: never with an elevation (the relay refuses that anyway).
    return this.call('PUT', '/v1/manager/pin', { body: { pin }, manager: true, headers: {} });
  }

  unlock(pin: string): Promise<ManagerElevation> {
    return this.call('POST', '/v1/manager/unlock', { body: { pin } });
  }

  lock(elevation: string): Promise<{ ok: true }> {
    return this.call('POST', '/v1/manager/lock', { body: {}, headers: { 'x-manager-elevation': elevation } });
  }

  events(opts: Omit<RelayEventsOptions, 'baseUrl' | 'token'> = {}): RelayEvents {
    return new RelayEvents({ baseUrl: this.baseUrl, token: this.opts.token, ...opts });
  }
}

export interface RelayEventsOptions {
  baseUrl: string;
  token: string;
  /** Start after this cursor (catch-up) instead of with a snapshot. */
  since?: number;
  /** No message (heartbeats included) for this long → the link is dead: reconnect. */
  heartbeatTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Emits `event` (RelayEvent) and `state` (ConnectionState). Reconnects with exponential backoff;
 * resumes from the last cursor so missed `order.updated` messages are replayed.
 */
export class RelayEvents extends EventEmitter<{ event: [RelayEvent]; state: [ConnectionState] }> {
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private cursor: number | undefined;
  state: ConnectionState = 'connecting';

  constructor(private readonly opts: RelayEventsOptions) {
    super();
    this.cursor = opts.since;
  }

  get lastCursor(): number | undefined {
    return this.cursor;
  }

  start(): this {
    if (!this.opts.baseUrl || !this.opts.token) {
      this.setState('unconfigured');
      return this;
    }
    this.connect();
    return this;
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  private connect(): void {
    if (this.stopped) return;
    this.setState('connecting');
    const url = new URL(this.opts.baseUrl.replace(/^http/, 'ws') + '/v1/events');
    if (this.cursor !== undefined) url.searchParams.set('since', String(this.cursor));
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: 10_000 });
    this.ws = ws;
    let unauthorized = false;
    ws.on('unexpected-response', (_req, res) => {
      unauthorized = res.statusCode === 401 || res.statusCode === 403;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      this.attempt = 0;
      this.setState('online');
      this.armWatchdog();
    });
    ws.on('message', (data) => {
      this.armWatchdog();
      let msg: RelayEvent;
      try {
        msg = JSON.parse(String(data)) as RelayEvent;
      } catch {
        return; // a garbled frame is dropped; the next snapshot/catch-up repairs state
      }
      if (msg.type === 'snapshot' && typeof msg.cursor === 'number') this.cursor = msg.cursor;
      if (msg.type === 'order.updated' && typeof msg.cursor === 'number') this.cursor = Math.max(this.cursor ?? 0, msg.cursor);
      this.emit('event', msg);
    });
    ws.on('ping', () => this.armWatchdog());
    ws.on('error', () => { /* followed by close; handled there */ });
    ws.on('close', () => {
      if (this.ws === ws) this.ws = null;
      this.clearWatchdog();
      if (this.stopped) return;
      if (unauthorized) {
        this.setState('unauthorized');
        // A revoked token will not come back by itself; retry slowly in case the relay was wrong.
        this.schedule(30_000);
        return;
      }
      this.setState('offline');
      const min = this.opts.minBackoffMs ?? 250;
      const max = this.opts.maxBackoffMs ?? 5_000;
      const delay = Math.min(max, min * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5);
      this.schedule(delay);
    });
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; this.connect(); }, ms);
    this.timer.unref?.();
  }

  private armWatchdog(): void {
    this.clearWatchdog();
    const ms = this.opts.heartbeatTimeoutMs ?? 45_000;
    this.watchdog = setTimeout(() => this.ws?.terminate(), ms);
    this.watchdog.unref?.();
  }

  private clearWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  /** Drop the current link (tests, network change); it reconnects and catches up. */
  drop(): void {
    this.ws?.terminate();
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.clearWatchdog();
    this.ws?.terminate();
    this.ws = null;
  }
}
