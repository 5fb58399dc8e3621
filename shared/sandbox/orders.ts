/**
 * Order rules: combine Native (reference §4) and basic Native (addendum), create with idempotent
 * re-request, query, close, and the buyer's payment. A basic order is held like a combine order
 * with one sub-order (`kind: 'basic'`, keyed `basic/<mchid>/<out_trade_no>`), so payment, bills,
 * the page and refunds treat both alike. Times here are on the BUSINESS clock (settable for tests).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { CombineNativeRequest, CombineOrderResult, CombineSubOrderResult, NativeOrderResult, NativeRequest, TradeState } from '../wechatpay/models';
import { formatBeijing, parseRfc3339 } from '../wechatpay/time';
import { ApiFailure, paramError } from './errors';
import type { SandboxConfig } from './config';
import { orderKey, type StateStore, type StoredOrder } from './state';

export { orderKey };
import { canonicalJson, validateClose, validateCreate, validateNative } from './validate';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** A code_url is valid 2 h; an identical re-request after that issues a new one (§8). */
export const CODE_URL_VALIDITY_MS = 2 * 3600_000;
const BANKS = ['OTHERS', 'CMB_DEBIT', 'ICBC_DEBIT', 'CCB_CREDIT', 'ABC_DEBIT'];

export type PayOutcome = 'SUCCESS' | 'USERPAYING' | 'PAYERROR';

/** `n` random decimal digits (transaction and refund ids). */
export function digits(n: number): string {
  let s = '';
  while (s.length < n) s += randomInt(0, 10);
  return s;
}

function codeUrl(): string {
  return `weixin://wxpay/bizpayurl/up?pr=${randomBytes(6).toString('base64url')}&groupid=00`;
}

/** 28 digits: 4200 + channel + Beijing date + serial, the shape of real transaction ids. */
function transactionId(now: number): string {
  return `420000${digits(4)}${formatBeijing(now).slice(0, 10).replace(/-/g, '')}${digits(10)}`;
}

const TRADE_STATE_DESC: Record<string, string> = {
  SUCCESS: '支付成功', REFUND: '转入退款', NOTPAY: '未支付', CLOSED: '已关闭', USERPAYING: '用户支付中', PAYERROR: '支付失败',
};


/** Where a sub-order lives: its order and its index there. */
export interface SubOrderRef {
  order: StoredOrder;
  index: number;
}

export class Orders {
  /**
   * Indexes (no scans per request): sub-order out_trade_no → order keys; `<mchid>/<out_trade_no>`
   * and transaction_id → sub-order; code_url (every one ever issued) → order key.
   */
  private readonly subIndex = new Map<string, string>();
  private readonly merchantSubIndex = new Map<string, { key: string; index: number }>();
  private readonly transactionIndex = new Map<string, { key: string; index: number }>();
  private readonly codeIndex = new Map<string, string>();

  constructor(private readonly cfg: SandboxConfig, private readonly store: StateStore) {
    for (const o of this.all()) this.index(o);
  }

  private index(o: StoredOrder): void {
    const key = orderKey(o);
    o.request.sub_orders.forEach((s, i) => {
      if (o.kind !== 'basic') this.subIndex.set(s.out_trade_no, key);
      this.merchantSubIndex.set(`${s.mchid}/${s.out_trade_no}`, { key, index: i });
      const tx = o.sub_orders[i]!.transaction_id;
      if (tx) this.transactionIndex.set(tx, { key, index: i });
    });
    this.codeIndex.set(o.code_url, key);
  }

  /** The combine order a sub-order number belongs to (or the first order with that number). */
  bySubOrder(outTradeNo: string): StoredOrder | undefined {
    const key = this.subIndex.get(outTradeNo);
    if (key !== undefined) return this.get(key);
    return this.all().find((o) => o.kind === 'basic' && o.combine_out_trade_no === outTradeNo);
  }

  /** A merchant's sub-order (combine sub-order or basic order) by its out_trade_no. */
  subOrder(mchid: string, outTradeNo: string): SubOrderRef | undefined {
    const r = this.merchantSubIndex.get(`${mchid}/${outTradeNo}`);
    const order = r && this.get(r.key);
    return order ? { order, index: r!.index } : undefined;
  }

  /** A sub-order by its transaction_id, if it belongs to `mchid`. */
  subOrderByTransaction(mchid: string, transactionId: string): SubOrderRef | undefined {
    const ref = this.subOrderByAnyMerchant(transactionId);
    return ref && ref.order.request.sub_orders[ref.index]!.mchid === mchid ? ref : undefined;
  }

  /** A sub-order by its transaction_id, whichever merchant it belongs to. */
  subOrderByAnyMerchant(transactionId: string): SubOrderRef | undefined {
    const r = this.transactionIndex.get(transactionId);
    const order = r && this.get(r.key);
    return order ? { order, index: r!.index } : undefined;
  }

  /** The trade_state of one sub-order: REFUND once a refund was made on it (addendum). */
  subState(o: StoredOrder, i: number): TradeState {
    return o.state === 'SUCCESS' && o.sub_orders[i]!.refunded ? 'REFUND' : o.state;
  }

  private get orders(): Record<string, StoredOrder> {
    return this.store.state.orders;
  }

  get(no: string): StoredOrder | undefined {
    return Object.hasOwn(this.orders, no) ? this.orders[no] : undefined;
  }

  all(): StoredOrder[] {
    return Object.values(this.orders);
  }

  /**
   * `time_expire` is the last moment the buyer may pay, not a close time (addendum): past it an
   * unpaid order keeps its state (NOTPAY) and can no longer be paid until the merchant closes it.
   */
  expired(o: StoredOrder, now: number): boolean {
    return o.state !== 'SUCCESS' && o.state !== 'CLOSED' && o.state !== 'REFUND' && now > o.expires_at;
  }

  /** The order as its initiator sees it: another merchant's order does not exist for the signer. */
  private own(no: string, signer: string): StoredOrder {
    // A `/` never occurs in a combine number (the pattern forbids it), so basic keys are out of reach.
    const o = no.includes('/') ? undefined : this.get(no);
    // Only the initiating mchid can query or close (reference §4.2); to anyone else the order
    // does not exist, as a wrong mchid reads on the real API.
    if (!o || o.request.combine_mchid !== signer) throw new ApiFailure(404, 'ORDER_NOT_EXIST', `订单不存在 (no combine order ${no} of combine_mchid ${signer})`);
    return o;
  }

  create(body: unknown, authMchid: string, now: number): { code_url: string } {
    const req = validateCreate(body);
    if (req.combine_mchid !== authMchid) {
      throw paramError('/combine_mchid', `与请求头中的商户号不一致 (must equal the Authorization mchid ${authMchid})`, req.combine_mchid);
    }
    if (req.combine_appid !== this.cfg.appid) {
      throw new ApiFailure(400, 'APPID_MCHID_NOT_MATCH', `appid和mch_id不匹配 (combine_appid ${req.combine_appid} is not bound to ${authMchid})`, { field: '/combine_appid', location: 'body' });
    }
    req.sub_orders.forEach((s, i) => {
      if (!this.cfg.known.has(s.mchid)) {
        throw new ApiFailure(400, 'APPID_MCHID_NOT_MATCH', `appid和mch_id不匹配 (sub-order mchid ${s.mchid} is not a sub-merchant bound to ${req.combine_appid})`, { field: `/sub_orders/${i}/mchid`, location: 'body' });
      }
    });
    const fingerprint = canonicalJson(req);
    const existing = this.get(req.combine_out_trade_no);
    if (existing) return this.reRequest(existing, fingerprint, now);
    // A sub-order number already belongs to another combine order of this merchant, or to a
    // basic order of the sub-order's merchant.
    req.sub_orders.forEach((s, i) => {
      if (this.subIndex.has(s.out_trade_no) || this.get(s.out_trade_no) || this.merchantSubIndex.has(`${s.mchid}/${s.out_trade_no}`)) {
        throw new ApiFailure(403, 'OUT_TRADE_NO_USED', `商户订单号重复 (sub-order out_trade_no ${s.out_trade_no} is already used)`, { field: `/sub_orders/${i}/out_trade_no`, location: 'body' });
      }
    });
    if (this.subIndex.has(req.combine_out_trade_no)) {
      throw new ApiFailure(403, 'OUT_TRADE_NO_USED', `商户订单号重复 (combine_out_trade_no ${req.combine_out_trade_no} is used by a sub-order)`);
    }
    return this.insert({
      combine_out_trade_no: req.combine_out_trade_no,
      request: JSON.parse(JSON.stringify(req)) as CombineNativeRequest,
      fingerprint,
      created_at: now,
      expires_at: this.expiry(req.time_expire, now),
      code_url: codeUrl(),
      code_url_issued_at: now,
      state: 'NOTPAY',
      sub_orders: req.sub_orders.map((s) => ({ out_trade_no: s.out_trade_no })),
    });
  }

  private insert(order: StoredOrder): { code_url: string } {
    this.store.putOrder(order);
    this.orders[orderKey(order)] = order;
    this.index(order);
    return { code_url: order.code_url };
  }

  /** An identical re-request: a new code_url; a changed one, or one for a paid/closed order, refused. */
  private reRequest(existing: StoredOrder, fingerprint: string, now: number): { code_url: string } {
    if (existing.fingerprint !== fingerprint) {
      throw new ApiFailure(400, 'INVALID_REQUEST', '请求重入时，参数与首次请求时不一致 (combine_out_trade_no was used with different content)');
    }
    if (existing.state === 'SUCCESS' || existing.state === 'REFUND') throw new ApiFailure(400, 'ORDER_PAID', '该订单已支付 (order already paid)');
    if (existing.state === 'CLOSED') throw new ApiFailure(400, 'ORDER_CLOSED', '订单已关闭 (order closed)');
    // A re-request issues a new code_url and the previous one can no longer be paid (addendum,
    // basic Native FAQ; applied to combine as the safe reading). The old one keeps pointing at
    // the order so a late scan is told why it fails. Past time_expire the order still answers
    // (the merchant may be recovering a lost answer), but its code cannot be paid.
    existing.code_url = codeUrl();
    existing.code_url_issued_at = now;
    this.store.putOrder(existing);
    this.index(existing);
    return { code_url: existing.code_url };
  }

  /**
   * Default 7 days; earlier than now+1 min is raised to +1 min; later than 7 days is clamped (§4.1).
   * Basic Native: the same rule (its own limits are UNCONFIRMED in the reference; the combine
   * ones are the safe reading).
   */
  private expiry(timeExpire: string | undefined, now: number): number {
    if (timeExpire === undefined) return now + 7 * DAY;
    const t = parseRfc3339(timeExpire)!.getTime();
    return Math.min(Math.max(t, now + MINUTE), now + 7 * DAY);
  }

  query(no: string, signer: string): CombineOrderResult {
    return this.result(this.own(no, signer));
  }

  /** The §4.2 query shape; also the decrypted notification resource. */
  result(o: StoredOrder): CombineOrderResult {
    const paid = o.state === 'SUCCESS';
    if (o.kind === 'basic') throw new Error('result() is for combine orders; use basicResult()');
    const res: CombineOrderResult = {
      combine_appid: o.request.combine_appid,
      combine_mchid: o.request.combine_mchid,
      combine_out_trade_no: o.combine_out_trade_no,
      sub_orders: o.request.sub_orders.map((s, i): CombineSubOrderResult => {
        const sub: CombineSubOrderResult = {
          mchid: s.mchid,
          trade_type: 'NATIVE',
          trade_state: this.subState(o, i),
          attach: s.attach,
          out_trade_no: s.out_trade_no,
          amount: { total_amount: s.amount.total_amount, currency: s.amount.currency },
        };
        if (paid) {
          sub.bank_type = o.bank_type;
          sub.success_time = formatBeijing(o.paid_at!);
          sub.transaction_id = o.sub_orders[i]!.transaction_id;
          sub.amount.payer_amount = s.amount.total_amount;
          sub.amount.payer_currency = 'CNY';
        }
        return sub;
      }),
    };
    if (o.request.scene_info?.device_id) res.scene_info = { device_id: o.request.scene_info.device_id };
    if (o.payer_openid) res.combine_payer_info = { openid: o.payer_openid };
    return res;
  }

  /**
   * Close rules. Returns 'USER_PAYING' when the buyer is mid-payment (WeChat answers 202 then).
   * `minAgeSeconds`: the old "not within 5 minutes of creation" rule (UNCONFIRMED for combine; the
   * safe reading enforces it, refused as 400 INVALID_REQUEST since no specific code is documented).
   */
  close(no: string, body: unknown, signer: string, minAgeSeconds: number, now: number): 'CLOSED' | 'USER_PAYING' {
    const req = validateClose(body);
    const o = this.own(no, signer);
    if (req.combine_appid !== o.request.combine_appid) {
      throw new ApiFailure(400, 'APPID_MCHID_NOT_MATCH', `appid和mch_id不匹配 (combine_appid ${req.combine_appid} differs from the order's)`, { field: '/combine_appid', location: 'body' });
    }
    const created = o.request.sub_orders.map((s) => `${s.mchid}/${s.out_trade_no}`).sort().join(',');
    const asked = req.sub_orders.map((s) => `${s.mchid}/${s.out_trade_no}`).sort().join(',');
    if (created !== asked) {
      throw new ApiFailure(400, 'INVALID_REQUEST', '子单信息与下单时不一致，合单必须全部关闭 (sub_orders must be exactly those of creation)');
    }
    // Paid: the exact combine code/status is UNCONFIRMED; 400 ORDER_PAID from the basic close docs.
    if (o.state === 'SUCCESS' || o.state === 'REFUND') throw new ApiFailure(400, 'ORDER_PAID', '订单已支付，不能关闭 (order paid: refund instead)');
    if (o.state === 'CLOSED') throw new ApiFailure(400, 'ORDER_CLOSED', '订单已关闭 (order already closed)');
    return this.closeOpen(o, minAgeSeconds, now);
  }

  // ---- basic Native (addendum "Basic Native") --------------------------------------------------

  /** `POST /v3/pay/transactions/native`, signed by the merchant named in the body. */
  createBasic(body: unknown, signer: string, now: number): { code_url: string } {
    const req = validateNative(body);
    if (req.mchid !== signer) throw paramError('/mchid', `与请求头中的商户号不一致 (must equal the Authorization mchid ${signer})`, req.mchid);
    if (req.appid !== this.cfg.appid) {
      throw new ApiFailure(400, 'APPID_MCHID_NOT_MATCH', `appid和mch_id不匹配 (appid ${req.appid} is not bound to ${signer})`, { field: '/appid', location: 'body' });
    }
    const fingerprint = canonicalJson(req);
    const ref = this.subOrder(req.mchid, req.out_trade_no);
    if (ref && ref.order.kind === 'basic') return this.reRequest(ref.order, fingerprint, now);
    // The number is one of this merchant's combine sub-orders: the same namespace.
    if (ref) throw new ApiFailure(403, 'OUT_TRADE_NO_USED', `商户订单号重复 (out_trade_no ${req.out_trade_no} is a combine sub-order of mchid ${req.mchid})`, { field: '/out_trade_no', location: 'body' });
    const copy = JSON.parse(JSON.stringify(req)) as NativeRequest;
    return this.insert({
      kind: 'basic',
      basic: copy,
      combine_out_trade_no: req.out_trade_no,
      // The one-sub-order view that payment, bills, the page and refunds share with combine orders.
      request: {
        combine_appid: req.appid,
        combine_mchid: req.mchid,
        combine_out_trade_no: req.out_trade_no,
        sub_orders: [{ mchid: req.mchid, attach: req.attach ?? '', amount: { total_amount: req.amount.total, currency: 'CNY' }, out_trade_no: req.out_trade_no, description: req.description }],
        ...(req.scene_info ? { scene_info: req.scene_info } : {}),
        ...(req.time_expire ? { time_expire: req.time_expire } : {}),
        notify_url: req.notify_url,
      },
      fingerprint,
      created_at: now,
      expires_at: this.expiry(req.time_expire, now),
      code_url: codeUrl(),
      code_url_issued_at: now,
      state: 'NOTPAY',
      sub_orders: [{ out_trade_no: req.out_trade_no }],
    });
  }

  /** `?mchid=` of the basic query: required, and the signer's own (its orders only). */
  private basicMchid(query: URLSearchParams, signer: string): string {
    const mchid = query.get('mchid');
    if (!mchid) throw new ApiFailure(400, 'PARAM_ERROR', 'mchid 字段缺失 (query parameter mchid is required)', { field: 'mchid', location: 'query' });
    if (mchid !== signer) throw new ApiFailure(400, 'PARAM_ERROR', `mchid 与请求头中的商户号不一致 (must equal the Authorization mchid ${signer})`, { field: 'mchid', location: 'query', value: mchid });
    return mchid;
  }

  /** `GET /v3/pay/transactions/out-trade-no/{no}?mchid=`: basic orders only (a combine sub-order reads ORDER_NOT_EXIST, §4.2). */
  queryBasic(no: string, query: URLSearchParams, signer: string): NativeOrderResult {
    const mchid = this.basicMchid(query, signer);
    const ref = this.subOrder(mchid, no);
    if (!ref || ref.order.kind !== 'basic') throw new ApiFailure(404, 'ORDER_NOT_EXIST', `订单不存在 (no basic order ${no} of mchid ${mchid})`);
    return this.basicResult(ref.order);
  }

  /** `GET /v3/pay/transactions/id/{transaction_id}?mchid=` */
  queryBasicById(transactionId: string, query: URLSearchParams, signer: string): NativeOrderResult {
    const mchid = this.basicMchid(query, signer);
    const ref = this.subOrderByTransaction(mchid, transactionId);
    if (!ref || ref.order.kind !== 'basic') throw new ApiFailure(404, 'ORDER_NOT_EXIST', `订单不存在 (no basic order with transaction_id ${transactionId} of mchid ${mchid})`);
    return this.basicResult(ref.order);
  }

  /** The basic query shape; also the decrypted basic notification resource. */
  basicResult(o: StoredOrder): NativeOrderResult {
    const b = o.basic!;
    const state = this.subState(o, 0);
    const res: NativeOrderResult = {
      appid: b.appid,
      mchid: b.mchid,
      out_trade_no: b.out_trade_no,
      trade_type: 'NATIVE',
      trade_state: state,
      trade_state_desc: TRADE_STATE_DESC[state] ?? state,
      attach: b.attach ?? '',
      amount: { total: b.amount.total, currency: 'CNY' },
    };
    if (o.state === 'SUCCESS') {
      res.transaction_id = o.sub_orders[0]!.transaction_id;
      res.bank_type = o.bank_type;
      res.success_time = formatBeijing(o.paid_at!);
      res.payer = { openid: o.payer_openid };
      res.amount = { total: b.amount.total, payer_total: b.amount.total, currency: 'CNY', payer_currency: 'CNY' };
    }
    if (b.scene_info?.device_id) res.scene_info = { device_id: b.scene_info.device_id };
    return res;
  }

  /**
   * `POST /v3/pay/transactions/out-trade-no/{no}/close {mchid}` → 204, re-entrant (closing a closed
   * order is 204 again, basic FAQ). The 5-minute rule and 202 USER_PAYING as for combine.
   */
  closeBasic(no: string, body: unknown, signer: string, minAgeSeconds: number, now: number): 'CLOSED' | 'USER_PAYING' {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw paramError('', '请求体应为JSON对象 (body must be a JSON object)');
    const mchid = (body as { mchid?: unknown }).mchid;
    if (mchid === undefined) throw paramError('/mchid', '字段缺失 (required)');
    if (mchid !== signer) throw paramError('/mchid', `与请求头中的商户号不一致 (must equal the Authorization mchid ${signer})`, mchid);
    const ref = this.subOrder(signer, no);
    if (!ref || ref.order.kind !== 'basic') throw new ApiFailure(404, 'ORDER_NOT_EXIST', `订单不存在 (no basic order ${no} of mchid ${signer})`);
    const o = ref.order;
    if (o.state === 'SUCCESS' || o.state === 'REFUND') throw new ApiFailure(400, 'ORDER_PAID', '订单已支付，不能关闭 (order paid: refund instead)');
    if (o.state === 'CLOSED') return 'CLOSED';
    return this.closeOpen(o, minAgeSeconds, now);
  }

  /** Combine and basic alike, once the order is known open: the 5-minute rule, 202 while paying, else closed. */
  private closeOpen(o: StoredOrder, minAgeSeconds: number, now: number): 'CLOSED' | 'USER_PAYING' {
    const age = (now - o.created_at) / 1000;
    if (age < minAgeSeconds) {
      throw new ApiFailure(400, 'INVALID_REQUEST', `订单生成后不能马上调用关单接口，最短调用时间间隔为${Math.round(minAgeSeconds / 60)}分钟 (close is refused within ${minAgeSeconds}s of creation; retry in ${Math.ceil(minAgeSeconds - age)}s)`);
    }
    if (o.state === 'USERPAYING') return 'USER_PAYING';
    o.state = 'CLOSED';
    o.closed_at = now;
    this.store.putOrder(o);
    return 'CLOSED';
  }

  byCodeUrl(url: string): StoredOrder | undefined {
    const no = this.codeIndex.get(url);
    return no === undefined ? undefined : this.get(no);
  }

  /** The buyer scans `code_url` and pays. Returns the order (paid ones get transaction ids). */
  pay(url: string, outcome: PayOutcome, now: number): StoredOrder {
    const o = this.byCodeUrl(url);
    if (!o) throw new ApiFailure(404, 'ORDER_NOT_EXIST', `二维码无效 (no order has code_url ${url})`);
    if (o.state === 'SUCCESS' || o.state === 'REFUND') throw new ApiFailure(400, 'ORDER_PAID', '订单已支付 (order already paid)');
    if (o.state === 'CLOSED') throw new ApiFailure(400, 'ORDER_CLOSED', '订单已关闭 (order closed)');
    if (url !== o.code_url) throw new ApiFailure(400, 'CODE_URL_EXPIRED', '二维码已失效，请使用商户重新下单后的二维码 (a newer code_url was issued for this order by a re-request)');
    if (now - o.code_url_issued_at >= CODE_URL_VALIDITY_MS) {
      throw new ApiFailure(400, 'CODE_URL_EXPIRED', '二维码已过期，请刷新后重试 (code_url older than 2 h)');
    }
    if (this.expired(o, now)) {
      throw new ApiFailure(400, 'ORDER_EXPIRED', `订单已超过商户设置的最晚支付时间，无法支付 (time_expire ${formatBeijing(o.expires_at)} passed; the order stays ${o.state} until the merchant closes it)`);
    }
    o.state = outcome;
    if (outcome === 'SUCCESS') {
      o.paid_at = now;
      o.bank_type = BANKS[randomInt(0, BANKS.length)];
      o.payer_openid ??= 'o' + randomBytes(20).toString('base64url').slice(0, 27);
      for (const s of o.sub_orders) s.transaction_id = transactionId(now);
      this.index(o);
    } else if (outcome === 'USERPAYING') {
      o.payer_openid ??= 'o' + randomBytes(20).toString('base64url').slice(0, 27);
    }
    this.store.putOrder(o);
    return o;
  }
}
