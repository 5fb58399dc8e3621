/**
 * Combine Native order rules (reference §4): create with idempotent re-request, query, close,
 * and the buyer's payment. Times here are on the BUSINESS clock (settable for tests).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { CombineNativeRequest, CombineOrderResult, CombineSubOrderResult } from '../wechatpay/models';
import { formatBeijing, parseRfc3339 } from '../wechatpay/time';
import { ApiFailure, paramError } from './errors';
import type { SandboxConfig } from './config';
import type { StateStore, StoredOrder } from './state';
import { canonicalJson, validateClose, validateCreate } from './validate';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** A code_url is valid 2 h; an identical re-request after that issues a new one (§8). */
export const CODE_URL_VALIDITY_MS = 2 * 3600_000;
const BANKS = ['OTHERS', 'CMB_DEBIT', 'ICBC_DEBIT', 'CCB_CREDIT', 'ABC_DEBIT'];

export type PayOutcome = 'SUCCESS' | 'USERPAYING' | 'PAYERROR';

function digits(n: number): string {
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

export class Orders {
  /** sub-order out_trade_no → combine number, and code_url → combine number (no scans per request). */
  private readonly subIndex = new Map<string, string>();
  private readonly codeIndex = new Map<string, string>();

  constructor(private readonly cfg: SandboxConfig, private readonly store: StateStore) {
    for (const o of this.all()) this.index(o);
  }

  private index(o: StoredOrder): void {
    for (const s of o.sub_orders) this.subIndex.set(s.out_trade_no, o.combine_out_trade_no);
    this.codeIndex.set(o.code_url, o.combine_out_trade_no);
  }

  /** The combine order a sub-order number belongs to. */
  bySubOrder(outTradeNo: string): StoredOrder | undefined {
    const no = this.subIndex.get(outTradeNo);
    return no === undefined ? undefined : this.get(no);
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
    const o = this.get(no);
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
    if (existing) {
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
    // A sub-order number already belongs to another combine order of this merchant.
    req.sub_orders.forEach((s, i) => {
      if (this.subIndex.has(s.out_trade_no) || this.get(s.out_trade_no)) {
        throw new ApiFailure(403, 'OUT_TRADE_NO_USED', `商户订单号重复 (sub-order out_trade_no ${s.out_trade_no} is already used)`, { field: `/sub_orders/${i}/out_trade_no`, location: 'body' });
      }
    });
    if (this.subIndex.has(req.combine_out_trade_no)) {
      throw new ApiFailure(403, 'OUT_TRADE_NO_USED', `商户订单号重复 (combine_out_trade_no ${req.combine_out_trade_no} is used by a sub-order)`);
    }
    const order: StoredOrder = {
      combine_out_trade_no: req.combine_out_trade_no,
      request: JSON.parse(JSON.stringify(req)) as CombineNativeRequest,
      fingerprint,
      created_at: now,
      expires_at: this.expiry(req.time_expire, now),
      code_url: codeUrl(),
      code_url_issued_at: now,
      state: 'NOTPAY',
      sub_orders: req.sub_orders.map((s) => ({ out_trade_no: s.out_trade_no })),
    };
    this.store.putOrder(order);
    this.orders[order.combine_out_trade_no] = order;
    this.index(order);
    return { code_url: order.code_url };
  }

  /** Default 7 days; earlier than now+1 min is raised to +1 min; later than 7 days is clamped (§4.1). */
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
    const res: CombineOrderResult = {
      combine_appid: o.request.combine_appid,
      combine_mchid: o.request.combine_mchid,
      combine_out_trade_no: o.combine_out_trade_no,
      sub_orders: o.request.sub_orders.map((s, i): CombineSubOrderResult => {
        const sub: CombineSubOrderResult = {
          mchid: s.mchid,
          trade_type: 'NATIVE',
          trade_state: o.state,
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
    } else if (outcome === 'USERPAYING') {
      o.payer_openid ??= 'o' + randomBytes(20).toString('base64url').slice(0, 27);
    }
    this.store.putOrder(o);
    return o;
  }
}
