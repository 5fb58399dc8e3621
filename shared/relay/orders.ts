/**
 * Order lifecycle against WeChat Pay: create (recorded first, then sent), query/sync, close
 * with the local 5-minute rule, and the checks that WeChat's view matches what we created.
 *
 * Two kinds of sale (contract §2): `combine` (2–10 merchants) is created, queried and closed by
 * the initiator with the combine endpoints; `single` (one merchant) with basic Native, signed
 * with that merchant's own keys, `out_trade_no` = its one sub-order's number. Everything else
 * (recording, idempotency, checks, the 5-minute rule, the reconciler) is the same path.
 */
import type { Credentials } from '../wechatpay/credentials';
import type { CombineNativeRequest, CombineOrderResult, NativeOrderResult, NativeRequest, TradeState } from '../wechatpay/models';
import { formatBeijing, parseRfc3339 } from '../wechatpay/time';
import { classify } from '../wechatpay/errors';
import type { Order, OrderKind, OrderState } from '../contracts/relay-api';
import type { Logger } from './log';
import { RelayError } from './errors';
import { newCombineOutTradeNo, subOutTradeNo } from './ids';
import type { Alert } from '../contracts/relay-api';
import type { OrderRow, RelayStore, SubOrderRow, Transition } from './repo-types';
import { errorCode, isAmbiguous, isNotFound, merchantKeysMissing, upstreamError, type PayClient, type PayClients } from './upstream';
import { requestHash, validateCreateOrder, type ValidOrderInput } from './validate';
import { OrderWaits } from './order-waits';
import { SEND_LEASE_MS } from './leases';

export interface OrderServiceOptions {
  store: RelayStore;
  /** Every merchant's client; combined orders are created, queried and closed by the initiator. */
  clients: PayClients;
  credentials: Credentials;
  /** notify_url of every request; read per request (a relay on port 0 knows it only once listening). */
  notifyUrl: () => string;
  queryAfterSeconds: number;
  closeMinAgeSeconds: number;
  defaultExpireMinutes: number;
  log: Logger;
  /** Pushes an alert to managers (events hub). */
  onAlert?: (alert: Alert) => void;
}

export type Check = { ok: true; transition: Transition } | { ok: false; kind: string; message: string };

/** WeChat's view of one of our sales, from the API of its kind (query answer or notification). */
export type Upstream = { kind: 'combine'; result: CombineOrderResult } | { kind: 'single'; result: NativeOrderResult };

const FINAL = new Set<OrderState>(['SUCCESS', 'CLOSED', 'PAYERROR']);

/** Order state from trade_state values: all-or-nothing payment (reference §0); one value for basic. */
function stateOf(states: readonly TradeState[]): OrderState {
  if (states.length > 0 && states.every((s) => s === 'SUCCESS' || s === 'REFUND')) return 'SUCCESS';
  if (states.some((s) => s === 'CLOSED' || s === 'REVOKED')) return 'CLOSED';
  if (states.some((s) => s === 'PAYERROR')) return 'PAYERROR';
  if (states.some((s) => s === 'USERPAYING')) return 'USERPAYING';
  return 'NOTPAY';
}

/** Combine state from the sub-orders' trade_state: all-or-nothing payment (reference §0). */
export function combinedState(result: CombineOrderResult): OrderState {
  return stateOf(result.sub_orders.map((s) => s.trade_state));
}

/** A basic order's transition: its state, success time and the one transaction id. */
export function nativeTransition(r: NativeOrderResult): Transition {
  const t = r.success_time ? parseRfc3339(r.success_time)?.getTime() : undefined;
  return { state: stateOf([r.trade_state]), paidMs: t ?? null, transactionIds: new Map([[r.out_trade_no, r.transaction_id ?? null]]) };
}

/**
 * The anti-fake-notice rule for a single sale: a basic order of OUR appid, about the very
 * sub-order and merchant we created it for, for the amount we created. A basic answer cannot
 * pay a combined order's sub-order, nor a combine answer a single sale.
 */
export function checkNative(ours: Ours, kind: OrderKind, sub: SubOrderRow, r: NativeOrderResult): Check {
  if (kind !== 'single') return { ok: false, kind: 'SUB_ORDERS_MISMATCH', message: `${r.out_trade_no} is a sub-order of combined order ${sub.combine_out_trade_no}, not a basic order` };
  if (r.out_trade_no !== sub.out_trade_no) return { ok: false, kind: 'SUB_ORDERS_MISMATCH', message: `basic order ${r.out_trade_no}, expected ${sub.out_trade_no}` };
  // A query answer may leave appid out (only the notification schema requires it); when given it must be ours.
  if (r.appid !== undefined && r.appid !== ours.appid) return { ok: false, kind: 'APPID_MISMATCH', message: `appid ${r.appid} is not ours` };
  if (r.mchid !== sub.mchid) return { ok: false, kind: 'MCHID_MISMATCH', message: `${r.out_trade_no}: mchid ${r.mchid}, created for ${sub.mchid}` };
  const total = r.amount?.total;
  const paid = r.trade_state === 'SUCCESS' || r.trade_state === 'REFUND';
  // An unpaid query answer may lack amount.total; a payment never does.
  if (total === undefined ? paid : total !== sub.amount) {
    return { ok: false, kind: 'AMOUNT_MISMATCH', message: `${r.out_trade_no}: amount ${total ?? '(none)'} fen, created for ${sub.amount} fen` };
  }
  return { ok: true, transition: nativeTransition(r) };
}

/** Whichever kind WeChat's view is, checked against the order as created (its kind included). */
export function checkUpstream(ours: Ours, kind: OrderKind, subs: SubOrderRow[], up: Upstream): Check {
  if (up.kind === 'single') {
    if (subs.length !== 1) return { ok: false, kind: 'SUB_ORDERS_MISMATCH', message: `a basic order cannot answer for an order of ${subs.length} sub-orders` };
    return checkNative(ours, kind, subs[0]!, up.result);
  }
  if (kind !== 'combine') return { ok: false, kind: 'SUB_ORDERS_MISMATCH', message: `combined order ${up.result.combine_out_trade_no} answers for a single-merchant sale` };
  return checkResult(ours, subs, up.result);
}

/** Who we are, as a notification or query result must say. */
export interface Ours {
  mchid: string;
  appid: string;
}

/** The combine-level part of the anti-fake-notice rule: our merchant and our appid. */
export function checkCombine(ours: Ours, result: CombineOrderResult): Check | null {
  if (result.combine_mchid !== ours.mchid) return { ok: false, kind: 'MCHID_MISMATCH', message: `combine_mchid ${result.combine_mchid} is not ours` };
  if (result.combine_appid !== ours.appid) return { ok: false, kind: 'APPID_MISMATCH', message: `combine_appid ${result.combine_appid} is not ours` };
  return null;
}

/** The transition WeChat's view asks for (state, latest success time, transaction ids). */
export function transitionOf(result: CombineOrderResult): Transition {
  const ids = new Map<string, string | null>();
  let paidMs: number | null = null;
  for (const r of result.sub_orders) {
    ids.set(r.out_trade_no, r.transaction_id ?? null);
    const t = r.success_time ? parseRfc3339(r.success_time)?.getTime() : undefined;
    if (t !== undefined && (paidMs === null || t > paidMs)) paidMs = t;
  }
  return { state: combinedState(result), paidMs, transactionIds: ids };
}

/**
 * The anti-fake-notice rule (reference §5.3): our merchant and appid, exactly our sub-orders,
 * each with the mchid and amount we created. Anything else never changes state.
 */
export function checkResult(ours: Ours, subs: SubOrderRow[], result: CombineOrderResult): Check {
  const combine = checkCombine(ours, result);
  if (combine) return combine;
  if (!Array.isArray(result.sub_orders) || result.sub_orders.length !== subs.length) {
    return { ok: false, kind: 'SUB_ORDERS_MISMATCH', message: `expected ${subs.length} sub-orders, got ${result.sub_orders?.length ?? 0}` };
  }
  const byNo = new Map(subs.map((s) => [s.out_trade_no, s]));
  for (const r of result.sub_orders) {
    const mine = byNo.get(r.out_trade_no);
    if (!mine) return { ok: false, kind: 'SUB_ORDERS_MISMATCH', message: `unknown sub-order ${r.out_trade_no}` };
    byNo.delete(r.out_trade_no);
    if (r.mchid !== mine.mchid) return { ok: false, kind: 'MCHID_MISMATCH', message: `sub-order ${r.out_trade_no}: mchid ${r.mchid}, created for ${mine.mchid}` };
    if (r.amount?.total_amount !== mine.amount) {
      return { ok: false, kind: 'AMOUNT_MISMATCH', message: `sub-order ${r.out_trade_no}: amount ${r.amount?.total_amount} fen, created for ${mine.amount} fen` };
    }
  }
  return { ok: true, transition: transitionOf(result) };
}

export class OrderService {
  /** Creates in flight in this process, by order number. */
  readonly inflight = new Map<string, Promise<Order>>();
  private readonly mchids: Set<string>;
  /** Requests waiting for an order another relay is creating (see resume). */
  private readonly waits: OrderWaits;

  constructor(private readonly o: OrderServiceOptions) {
    this.mchids = new Set(o.credentials.subMerchants.map((s) => s.mchid));
    this.waits = new OrderWaits(o.store.feed);
  }

  get store(): RelayStore {
    return this.o.store;
  }

  /** Several relay processes share the store (work of another live relay must be left to it). */
  get shared(): boolean {
    return this.o.store.engine === 'postgresql';
  }

  /** The initiator's client: combine create, query and close are the initiator's calls. */
  storeClient(): PayClient {
    return this.o.clients.initiator;
  }

  private get client(): PayClient {
    return this.o.clients.initiator;
  }

  async get(no: string): Promise<Order> {
    const order = await this.o.store.orders.get(no);
    if (!order) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    return order;
  }

  /** POST /v1/orders. Returns the order; a retry with the same Idempotency-Key gets the same one. */
  async create(terminal: string, body: unknown, idempotencyKey: string | null): Promise<Order> {
    const input = validateCreateOrder(body, this.mchids, this.o.defaultExpireMinutes);
    // A single sale is signed by its merchant: without its keys here it can never be created.
    const only = input.sub_orders.length === 1 ? input.sub_orders[0]!.mchid : null;
    if (only !== null && !this.o.clients.has(only)) throw merchantKeysMissing(only);
    const hash = requestHash(input);
    if (idempotencyKey) {
      const existing = await this.o.store.orders.byIdempotencyKey(terminal, idempotencyKey);
      if (existing) return this.retried(existing, hash);
    }
    const no = await this.record(terminal, input, hash, idempotencyKey);
    if (no === null) {
      // The same key was recorded meanwhile (a retry that reached another relay): that order.
      const existing = await this.o.store.orders.byIdempotencyKey(terminal, idempotencyKey!);
      if (!existing) throw new RelayError(500, 'INTERNAL', 'idempotency key conflict without an order');
      return this.retried(existing, hash);
    }
    return this.send(no);
  }

  private retried(existing: OrderRow, hash: string): Promise<Order> {
    if (existing.request_hash !== hash) throw new RelayError(409, 'IDEMPOTENCY_KEY_REUSED', 'Idempotency-Key was used for a different order');
    return this.resume(existing);
  }

  private async orderOf(row: OrderRow): Promise<Order> {
    return (await this.o.store.orders.toOrders([row]))[0]!;
  }

  /**
   * Another relay is sending this create (PostgreSQL): wait for its outcome on the change feed,
   * at most until its lease runs out; then the row as it is.
   */
  private async awaitOtherSender(row: OrderRow): Promise<OrderRow> {
    await this.waits.next(row.combine_out_trade_no, row.created_ms + SEND_LEASE_MS - Date.now());
    return (await this.o.store.orders.row(row.combine_out_trade_no)) ?? row;
  }

  /** A retried create: the same order, re-sent identically only when its fate is unknown. */
  private async resume(row: OrderRow): Promise<Order> {
    const inflight = this.inflight.get(row.combine_out_trade_no);
    if (inflight) return inflight;
    if (this.shared && row.creation === 'PENDING' && Date.now() < row.created_ms + SEND_LEASE_MS) row = await this.awaitOtherSender(row);
    if (row.creation === 'CREATED' || (row.state !== 'NOTPAY' && row.state !== 'USERPAYING')) return this.orderOf(row);
    if (row.creation === 'PENDING' || (row.creation === 'FAILED' && row.watch === 1)) return this.send(row.combine_out_trade_no);
    throw new RelayError(502, `UPSTREAM_${row.error_code ?? 'ERROR'}`, `WeChat Pay refused the order: ${row.error_message ?? ''}`, {
      upstream_code: row.error_code, order: await this.orderOf(row),
    });
  }

  /** The order number, or null when the idempotency key was taken meanwhile. */
  private async record(terminal: string, input: ValidOrderInput, hash: string, idempotencyKey: string | null): Promise<string | null> {
    const now = Date.now();
    const no = newCombineOutTradeNo(now);
    const expiresMs = now + input.expire_minutes * 60_000;
    const c = this.o.credentials;
    const subs = input.sub_orders.map((s, idx) => ({
      out_trade_no: subOutTradeNo(no, idx), combine_out_trade_no: no, idx, mchid: s.mchid, description: s.description, amount: s.amount, attach: s.attach,
    }));
    const kind: OrderKind = subs.length === 1 ? 'single' : 'combine';
    // The exact body is stored so any re-send is identical (WeChat refuses changed re-requests).
    const request: CombineNativeRequest | NativeRequest = kind === 'single' ? {
      appid: c.appid,
      mchid: subs[0]!.mchid,
      description: subs[0]!.description,
      out_trade_no: subs[0]!.out_trade_no,
      time_expire: formatBeijing(expiresMs),
      // As for combine: the order number lets the bill's 商户数据包 point back to it.
      attach: subs[0]!.attach ?? no,
      notify_url: this.o.notifyUrl(),
      amount: { total: subs[0]!.amount, currency: 'CNY' },
    } : {
      combine_appid: c.appid,
      combine_mchid: c.mchid,
      combine_out_trade_no: no,
      sub_orders: subs.map((s) => ({
        mchid: s.mchid,
        // attach is required by WeChat; the order number lets bills (商户数据包) point back to it.
        attach: s.attach ?? no,
        amount: { total_amount: s.amount, currency: 'CNY' },
        out_trade_no: s.out_trade_no,
        description: s.description,
      })),
      time_expire: formatBeijing(expiresMs),
      notify_url: this.o.notifyUrl(),
    };
    const inserted = await this.o.store.orders.insert({
      row: {
        combine_out_trade_no: no, kind, state: 'NOTPAY', total_amount: subs.reduce((a, s) => a + s.amount, 0), description: input.description,
        created_at: new Date(now).toISOString(), created_ms: now, expires_at: new Date(expiresMs).toISOString(), expires_ms: expiresMs,
        updated_ms: now, terminal, creation: 'PENDING', idempotency_key: idempotencyKey, request_hash: hash,
        request_json: JSON.stringify(request), watch: 1, next_check_ms: now + this.o.queryAfterSeconds * 1000,
      },
      subs,
    });
    if (!inserted) return null;
    this.o.log.info({ order: no, kind, terminal, amount: subs.reduce((a, s) => a + s.amount, 0) }, 'order recorded');
    return no;
  }

  /** Sends (or re-sends) the stored create request. */
  send(no: string): Promise<Order> {
    const existing = this.inflight.get(no);
    if (existing) return existing;
    const p = this.doSend(no).finally(() => this.inflight.delete(no));
    this.inflight.set(no, p);
    return p;
  }

  private async doSend(no: string): Promise<Order> {
    const row = await this.o.store.orders.row(no);
    if (!row) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    try {
      const res = row.kind === 'single'
        ? await (await this.singleClient(no)).createNative(JSON.parse(row.request_json) as NativeRequest)
        : await this.client.combineNative(JSON.parse(row.request_json) as CombineNativeRequest);
      const order = await this.o.store.orders.markCreated(no, res.code_url);
      this.o.log.info({ order: no }, 'order created at WeChat Pay');
      return order ?? this.get(no);
    } catch (err) {
      const code = errorCode(err);
      const message = err instanceof Error ? err.message : String(err);
      // Timeouts and 5xx are ambiguous: WeChat may hold the order, so the reconciler follows it.
      const order = await this.o.store.orders.markFailed(no, code, message, isAmbiguous(err));
      this.o.log.warn({ order: no, code }, 'order creation failed');
      throw upstreamError(err, { order: order ?? (await this.get(no)) });
    }
  }

  /**
   * Applies WeChat's view (query result) after the mismatch checks. A mismatch stores an alert
   * and changes nothing.
   */
  applyResult(no: string, result: CombineOrderResult, source: string): Promise<Order> {
    return this.applyUpstream(no, { kind: 'combine', result }, source);
  }

  /** applyResult for either kind of answer (basic for a single sale). */
  async applyUpstream(no: string, up: Upstream, source: string): Promise<Order> {
    const row = await this.o.store.orders.row(no);
    if (!row) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    const subs = await this.o.store.orders.subRows(no);
    const check = checkUpstream(this.o.credentials, row.kind, subs, up);
    if (!check.ok) {
      await this.alert(check.kind, no, `${source}: ${check.message}`, `${source}:${no}:${check.kind}`);
      throw new RelayError(502, `UPSTREAM_${check.kind}`, check.message);
    }
    const changed = await this.o.store.orders.transition(no, check.transition);
    if (changed) this.o.log.info({ order: no, state: check.transition.state, source }, 'order state changed');
    return this.get(no);
  }

  /** Stored once per dedupe key and pushed to managers; never throws (an alert must not fail its caller). */
  async alert(kind: string, no: string | null, message: string, dedupeKey: string | null): Promise<void> {
    try {
      const a = await this.o.store.alerts.add(kind, no, message, dedupeKey);
      if (a) {
        this.o.log.warn({ order: no, kind }, 'alert');
        this.o.onAlert?.(a);
      }
    } catch (err) {
      this.o.log.error({ order: no, kind, err: (err as Error).message }, 'alert not stored');
    }
  }

  /** The one merchant's client of a single sale (MerchantKeysMissingError when its keys are gone). */
  private async singleClient(no: string): Promise<PayClient> {
    const sub = (await this.o.store.orders.subRows(no))[0];
    if (!sub) throw new RelayError(404, 'ORDER_NOT_FOUND', `no sub-order of ${no}`);
    return this.o.clients.get(sub.mchid);
  }

  /** WeChat's view of the order through the API of its kind (errors as the client throws them). */
  async queryUpstream(no: string): Promise<Upstream> {
    const row = await this.o.store.orders.row(no);
    if (!row) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    if (row.kind === 'single') {
      const sub = (await this.o.store.orders.subRows(no))[0]!;
      return { kind: 'single', result: await this.o.clients.get(sub.mchid).queryNative(sub.out_trade_no) };
    }
    return { kind: 'combine', result: await this.client.combineQuery(no) };
  }

  /** Close at WeChat Pay with the API of the order's kind (combine: exactly the sub-orders of creation). */
  private async closeUpstream(row: OrderRow): Promise<void> {
    const no = row.combine_out_trade_no;
    const subs = await this.o.store.orders.subRows(no);
    if (row.kind === 'single') return this.o.clients.get(subs[0]!.mchid).closeNative(subs[0]!.out_trade_no);
    return this.client.combineClose(no, {
      combine_appid: this.o.credentials.appid,
      sub_orders: subs.map((s) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no })),
    });
  }

  /** GET /v1/orders/{no}?sync=1: ask WeChat Pay first. */
  async sync(no: string): Promise<Order> {
    const order = await this.get(no);
    if (FINAL.has(order.state) || order.creation !== 'CREATED') return order;
    try {
      return await this.applyUpstream(no, await this.queryUpstream(no), 'query');
    } catch (err) {
      throw upstreamError(err);
    }
  }

  /**
   * Close: local 5-minute rule, then query (a paid order answers ORDER_PAID and is marked
   * paid), then close with exactly the sub-orders of creation.
   */
  async close(no: string, by: string): Promise<Order> {
    try {
      const order = await this.closeInner(no, false);
      await this.o.store.audit.add(by, 'close', no, { outcome: 'CLOSED' });
      return order;
    } catch (err) {
      await this.o.store.audit.add(by, 'close', no, { outcome: err instanceof RelayError ? err.code : 'ERROR' }).catch(() => {});
      throw err;
    }
  }

  /** `auto`: the reconciler closing an expired order. */
  async closeInner(no: string, auto: boolean): Promise<Order> {
    const row = await this.o.store.orders.row(no);
    if (!row) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    if (row.state === 'SUCCESS') throw new RelayError(409, 'ORDER_PAID', 'the order is paid; refund it instead');
    if (row.state === 'CLOSED') return this.orderOf(row);
    if (row.state === 'PAYERROR') throw new RelayError(409, 'ORDER_FINAL', 'the order already failed');
    if (row.creation === 'FAILED' && row.watch === 0) {
      // WeChat refused it outright: nothing exists upstream to close.
      await this.o.store.orders.transition(no, { state: 'CLOSED' });
      return this.get(no);
    }
    if (this.inflight.has(no)) throw new RelayError(409, 'ORDER_PENDING', 'the order is still being created');
    const ageS = (Date.now() - row.created_ms) / 1000;
    if (ageS < this.o.closeMinAgeSeconds) {
      const retry = Math.max(1, Math.ceil(this.o.closeMinAgeSeconds - ageS));
      throw new RelayError(409, 'CLOSE_TOO_EARLY', `orders can be closed ${this.o.closeMinAgeSeconds}s after creation; retry in ${retry}s`, {
        retry_after_seconds: retry,
      });
    }
    let result: Upstream | null = null;
    try {
      result = await this.queryUpstream(no);
    } catch (err) {
      if (!isNotFound(err)) throw upstreamError(err);
    }
    if (result === null) {
      // WeChat never created it: closing is purely local.
      await this.o.store.orders.transition(no, { state: 'CLOSED' });
      return this.get(no);
    }
    const after = await this.applyUpstream(no, result, auto ? 'expiry query' : 'close query');
    if (after.state === 'SUCCESS') throw new RelayError(409, 'ORDER_PAID', 'the order was paid; refund it instead');
    if (after.state === 'CLOSED') return after;
    if (after.state === 'PAYERROR') throw new RelayError(409, 'ORDER_FINAL', 'the order already failed');
    try {
      await this.closeUpstream(row);
    } catch (err) {
      const kind = classify(err).kind;
      if (kind === 'ORDER_CLOSED') {
        // A second close answers ORDER_CLOSED: it is closed, which is what we wanted.
      } else if (kind === 'ORDER_PAID') {
        try {
          await this.applyUpstream(no, await this.queryUpstream(no), 'close query');
        } catch { /* the reconciler will query again */ }
        throw new RelayError(409, 'ORDER_PAID', 'the order was paid; refund it instead');
      } else if (kind === 'USER_PAYING') {
        throw new RelayError(409, 'USERPAYING', 'the customer is paying; try again shortly');
      } else {
        throw upstreamError(err);
      }
    }
    await this.o.store.orders.transition(no, { state: 'CLOSED' });
    this.o.log.info({ order: no, auto }, 'order closed');
    return this.get(no);
  }
}

