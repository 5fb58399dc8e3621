/**
 * Refunds (addendum "Refunds"): per sub-order (or basic order), made by that sub-order's own
 * merchant. A refund starts PROCESSING and settles after a delay (SUCCESS, or ABNORMAL / CLOSED
 * when armed through /sandbox/control/refund-outcome); settling and its REFUND.* notification
 * commit together. Business-clock times (create_time, rules) unless named real.
 */
import type { RefundNotificationResource, RefundResult, RefundStatus } from '../wechatpay/models';
import { formatBeijing } from '../wechatpay/time';
import { ApiFailure, paramError } from './errors';
import type { SandboxConfig } from './config';
import type { Notifier } from './notifier';
import { digits, type Orders, type SubOrderRef } from './orders';
import { refundKey, type StateStore, type StoredRefund } from './state';
import { canonicalJson, isObj, notifyUrl } from './validate';

const DAY = 86_400_000;
export const REFUND_MAX_AGE_DAYS = 365;
export const REFUND_MAX_COUNT = 50;
export const DEFAULT_REFUND_MIN_INTERVAL_SECONDS = 60;
export const DEFAULT_REFUND_DELAY_MS = 2000;

const OUT_REFUND_NO = /^[0-9A-Za-z_\-|*@]{1,64}$/;
export type RefundOutcome = 'SUCCESS' | 'ABNORMAL' | 'CLOSED';
const OUTCOMES: RefundOutcome[] = ['SUCCESS', 'ABNORMAL', 'CLOSED'];
const SUMMARY: Record<RefundOutcome, string> = { SUCCESS: '退款成功', ABNORMAL: '退款异常', CLOSED: '退款关闭' };

/** The initiator asking for a participant's sub-order: WeChat Pay's own words (addendum). */
const NOT_YOURS = '您的请求参数与订单信息不一致';

type Obj = Record<string, unknown>;

interface ArmedOutcome {
  outcome: RefundOutcome;
  out_refund_no?: string;
  count: number;
}

export interface RefundOptions {
  /** Real milliseconds from PROCESSING to the final status (SANDBOX_REFUND_DELAY_MS). */
  delayMs?: number;
  /** Minimum business-clock seconds between two refunds of one sub-order (SANDBOX_REFUND_MIN_INTERVAL_SECONDS). */
  minIntervalSeconds?: number;
}

function validateRefund(body: unknown): { transaction_id?: string; out_trade_no?: string; out_refund_no: string; reason?: string; notify_url?: string; funds_account?: string; amount: { refund: number; total: number; currency: string } } {
  if (!isObj(body)) throw paramError('', '请求体应为JSON对象 (body must be a JSON object)');
  const text = (k: string, max: number, o: Obj = body, ptr = '') => {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw paramError(`${ptr}/${k}`, '字段类型错误，应为字符串 (must be a string)', v);
    if ([...v].length > max) throw paramError(`${ptr}/${k}`, `超出最大长度 ${max} (at most ${max} characters)`, v);
    return v;
  };
  const tx = text('transaction_id', 32);
  const no = text('out_trade_no', 32);
  if (tx === undefined && no === undefined) throw paramError('/out_trade_no', '字段缺失，transaction_id与out_trade_no二选一 (give transaction_id or out_trade_no)');
  const out_refund_no = text('out_refund_no', 64);
  if (out_refund_no === undefined) throw paramError('/out_refund_no', '字段缺失 (required)');
  if (!OUT_REFUND_NO.test(out_refund_no)) throw paramError('/out_refund_no', '格式错误 (1–64 of [0-9A-Za-z_-|*@])', out_refund_no);
  const reason = text('reason', 80);
  const notify_url = text('notify_url', 256);
  if (notify_url !== undefined) notifyUrl(notify_url);
  const funds_account = text('funds_account', 32);
  if (funds_account !== undefined && funds_account !== 'AVAILABLE') throw paramError('/funds_account', '仅支持AVAILABLE (only AVAILABLE)', funds_account);
  if (!isObj(body.amount)) throw paramError('/amount', body.amount === undefined ? '字段缺失 (required)' : '应为对象 (must be an object)');
  const fen = (k: 'refund' | 'total') => {
    const v = (body.amount as Obj)[k];
    if (v === undefined) throw paramError(`/amount/${k}`, '字段缺失 (required)');
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw paramError(`/amount/${k}`, '金额应为正整数（单位：分） (must be a positive integer number of fen)', v);
    return v;
  };
  const refund = fen('refund');
  const total = fen('total');
  const currency = text('currency', 16, body.amount as Obj, '/amount');
  if (currency === undefined) throw paramError('/amount/currency', '字段缺失 (required)');
  if (currency !== 'CNY') throw paramError('/amount/currency', '仅支持CNY (only CNY)', currency);
  if (refund > total) throw paramError('/amount/refund', '退款金额不能大于原订单金额 (refund must not exceed total)', refund);
  return { transaction_id: tx, out_trade_no: no, out_refund_no, reason, notify_url, funds_account, amount: { refund, total, currency } };
}

export class Refunds {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private armed: ArmedOutcome[] = [];
  private closed = false;
  readonly delayMs: number;
  readonly minIntervalSeconds: number;

  constructor(
    private readonly cfg: SandboxConfig,
    private readonly store: StateStore,
    private readonly orders: Orders,
    private readonly notifier: Notifier,
    private readonly now: () => number,
    opts: RefundOptions = {},
  ) {
    this.delayMs = opts.delayMs ?? DEFAULT_REFUND_DELAY_MS;
    this.minIntervalSeconds = opts.minIntervalSeconds ?? DEFAULT_REFUND_MIN_INTERVAL_SECONDS;
  }

  /** Resume refunds left PROCESSING by a previous run (overdue ones settle at once). */
  start(): void {
    for (const r of Object.values(this.store.state.refunds)) if (r.status === 'PROCESSING') this.schedule(r);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** Refunds of one sub-order, oldest first. */
  private ofSubOrder(ref: SubOrderRef): StoredRefund[] {
    const s = ref.order.request.sub_orders[ref.index]!;
    return Object.values(this.store.state.refunds).filter((r) => r.mchid === s.mchid && r.out_trade_no === s.out_trade_no).sort((a, b) => a.created_at - b.created_at);
  }

  /** The sub-order a refund names, as the signer may see it (the initiator is refused as WeChat Pay refuses it). */
  private find(signer: string, req: { transaction_id?: string; out_trade_no?: string }): SubOrderRef {
    let ref: SubOrderRef | undefined;
    if (req.transaction_id !== undefined) {
      ref = this.orders.subOrderByAnyMerchant(req.transaction_id);
      // Both given: they must name the same sub-order.
      if (ref && req.out_trade_no !== undefined && ref.order.request.sub_orders[ref.index]!.out_trade_no !== req.out_trade_no) {
        throw new ApiFailure(400, 'INVALID_REQUEST', `${NOT_YOURS} (transaction_id and out_trade_no name different orders)`);
      }
    } else {
      ref = this.orders.subOrder(signer, req.out_trade_no!);
      if (!ref) {
        // The initiator naming a participant's sub-order by its number.
        const combine = this.orders.bySubOrder(req.out_trade_no!);
        if (combine && combine.kind !== 'basic' && combine.request.combine_mchid === signer) {
          throw new ApiFailure(400, 'INVALID_REQUEST', `${NOT_YOURS} (a refund is made by the sub-order's own merchant, not by the combine initiator ${signer})`);
        }
      }
    }
    if (ref) {
      const owner = ref.order.request.sub_orders[ref.index]!.mchid;
      if (owner !== signer) {
        if (ref.order.kind !== 'basic' && ref.order.request.combine_mchid === signer) {
          throw new ApiFailure(400, 'INVALID_REQUEST', `${NOT_YOURS} (a refund is made by the sub-order's own merchant ${owner}, not by the combine initiator ${signer})`);
        }
        ref = undefined;
      }
    }
    // The combine number is not a sub-order: it is not found either.
    if (!ref) throw new ApiFailure(404, 'RESOURCE_NOT_EXISTS', `订单不存在 (no paid sub-order ${req.transaction_id ?? req.out_trade_no} of mchid ${signer})`);
    return ref;
  }

  /** `POST /v3/refund/domestic/refunds`, signed by `signer`. */
  create(body: unknown, signer: string): RefundResult {
    const req = validateRefund(body);
    const now = this.now();
    const existing = this.store.state.refunds[refundKey(signer, req.out_refund_no)];
    const ref = this.find(signer, req);
    const sub = ref.order.request.sub_orders[ref.index]!;
    const fingerprint = canonicalJson({ ...req, transaction_id: ref.order.sub_orders[ref.index]!.transaction_id, out_trade_no: sub.out_trade_no });
    if (existing) {
      // The same out_refund_no is the same refund: a retry gets its current state.
      if (existing.fingerprint !== fingerprint) throw new ApiFailure(400, 'INVALID_REQUEST', `同一退款单号的请求参数与首次请求不一致 (out_refund_no ${req.out_refund_no} was used with different content)`);
      return this.result(existing);
    }
    if (ref.order.state !== 'SUCCESS') throw new ApiFailure(400, 'INVALID_REQUEST', `订单状态不允许退款 (the order is ${ref.order.state}, not paid)`);
    if (req.amount.total !== sub.amount.total_amount) throw paramError('/amount/total', `与订单金额不一致 (the order's total is ${sub.amount.total_amount} fen)`, req.amount.total);
    if (now - ref.order.paid_at! > REFUND_MAX_AGE_DAYS * DAY) throw new ApiFailure(400, 'INVALID_REQUEST', `订单已超过可退款的最大期限（${REFUND_MAX_AGE_DAYS}天） (paid more than ${REFUND_MAX_AGE_DAYS} days ago)`);
    const previous = this.ofSubOrder(ref);
    if (previous.length >= REFUND_MAX_COUNT) throw new ApiFailure(400, 'INVALID_REQUEST', `部分退款次数超过上限${REFUND_MAX_COUNT}次 (at most ${REFUND_MAX_COUNT} refunds per order)`);
    const last = previous[previous.length - 1];
    if (last && now - last.created_at < this.minIntervalSeconds * 1000) {
      const wait = Math.ceil(this.minIntervalSeconds - (now - last.created_at) / 1000);
      throw new ApiFailure(429, 'FREQUENCY_LIMITED', `同一笔订单两次退款至少间隔${this.minIntervalSeconds}秒 (retry in ${wait}s)`);
    }
    // A CLOSED refund returned nothing; every other one counts against the total.
    const refunded = previous.filter((r) => r.status !== 'CLOSED').reduce((s, r) => s + r.refund, 0);
    if (refunded + req.amount.refund > sub.amount.total_amount) {
      throw new ApiFailure(403, 'NOT_ENOUGH', `可退金额不足 (${sub.amount.total_amount - refunded} fen left of ${sub.amount.total_amount}; asked ${req.amount.refund})`);
    }
    const r: StoredRefund = {
      mchid: signer,
      out_refund_no: req.out_refund_no,
      refund_id: `50${digits(4)}0${digits(7)}${formatBeijing(now).slice(0, 10).replace(/-/g, '')}${digits(8)}`,
      out_trade_no: sub.out_trade_no,
      transaction_id: ref.order.sub_orders[ref.index]!.transaction_id!,
      total: sub.amount.total_amount,
      refund: req.amount.refund,
      reason: req.reason,
      // No notify_url: the merchant's configured refund URL; the order's notify_url stands in for it.
      notify_url: req.notify_url ?? ref.order.request.notify_url,
      fingerprint,
      created_at: now,
      status: 'PROCESSING',
      outcome: this.takeOutcome(req.out_refund_no),
      due_at: Date.now() + this.delayMs,
      user_received_account: ref.order.bank_type && ref.order.bank_type !== 'OTHERS' ? `${ref.order.bank_type}银行卡` : '支付用户零钱',
    };
    this.store.transaction(() => {
      this.store.putRefund(r);
      const s = ref.order.sub_orders[ref.index]!;
      if (!s.refunded) {
        s.refunded = true;
        this.store.putOrder(ref.order);
      }
    });
    this.schedule(r);
    return this.result(r);
  }

  /** `GET /v3/refund/domestic/refunds/{out_refund_no}`: the signer's own refunds only. */
  query(outRefundNo: string, signer: string): RefundResult {
    const r = this.store.state.refunds[refundKey(signer, outRefundNo)];
    if (!r) throw new ApiFailure(404, 'RESOURCE_NOT_EXISTS', `退款单不存在 (no refund ${outRefundNo} of mchid ${signer})`);
    return this.result(r);
  }

  result(r: StoredRefund): RefundResult {
    const res: RefundResult = {
      refund_id: r.refund_id,
      out_refund_no: r.out_refund_no,
      transaction_id: r.transaction_id,
      out_trade_no: r.out_trade_no,
      channel: 'ORIGINAL',
      user_received_account: r.user_received_account,
      create_time: formatBeijing(r.created_at),
      status: r.status,
      funds_account: 'AVAILABLE',
      amount: {
        total: r.total, refund: r.refund, from: [], payer_total: r.total, payer_refund: r.refund,
        settlement_refund: r.refund, settlement_total: r.total, discount_refund: 0, currency: 'CNY', refund_fee: 0,
      },
      promotion_detail: [],
    };
    if (r.success_at !== undefined) res.success_time = formatBeijing(r.success_at);
    return res;
  }

  // ---- settling ------------------------------------------------------------------------------

  private takeOutcome(outRefundNo: string): RefundOutcome {
    const i = this.armed.findIndex((a) => a.out_refund_no === undefined || a.out_refund_no === outRefundNo);
    if (i < 0) return 'SUCCESS';
    const a = this.armed[i]!;
    if (--a.count <= 0) this.armed.splice(i, 1);
    return a.outcome;
  }

  private schedule(r: StoredRefund): void {
    if (this.closed) return;
    const key = refundKey(r.mchid, r.out_refund_no);
    clearTimeout(this.timers.get(key));
    const t = setTimeout(() => {
      this.timers.delete(key);
      try {
        this.settle(r);
      } catch {
        // the store is closing (a test tearing down): the next start settles it
      }
    }, Math.max(0, r.due_at - Date.now()));
    this.timers.set(key, t);
  }

  /** PROCESSING → its outcome, with the REFUND.* notification, in one transaction. */
  private settle(r: StoredRefund): void {
    if (this.closed || r.status !== 'PROCESSING') return;
    const now = this.now();
    const merchant = this.cfg.keys.get(r.mchid)!;
    this.store.transaction(() => {
      r.status = r.outcome as RefundStatus;
      r.final_at = now;
      if (r.outcome === 'SUCCESS') r.success_at = now;
      this.store.putRefund(r);
      const resource: RefundNotificationResource = {
        mchid: r.mchid, out_trade_no: r.out_trade_no, transaction_id: r.transaction_id, out_refund_no: r.out_refund_no, refund_id: r.refund_id,
        refund_status: r.status, user_received_account: r.user_received_account,
        amount: { total: r.total, refund: r.refund, payer_total: r.total, payer_refund: r.refund },
      };
      if (r.success_at !== undefined) resource.success_time = formatBeijing(r.success_at);
      // Signed and encrypted with the keys of the sub-order's merchant (the one that refunded).
      this.notifier.enqueue(merchant, { event_type: `REFUND.${r.outcome}`, summary: SUMMARY[r.outcome], original_type: 'refund', resource, label: r.out_refund_no }, r.notify_url, now);
    });
  }

  // ---- test control --------------------------------------------------------------------------

  /** `POST /sandbox/control/refund-outcome {"outcome", "out_refund_no"?, "count"?}`: the next refunds (or that one) end so. */
  arm(body: unknown): ArmedOutcome {
    const b = isObj(body) ? body : {};
    if (!OUTCOMES.includes(b.outcome as RefundOutcome)) throw new ApiFailure(400, 'PARAM_ERROR', `outcome must be one of ${OUTCOMES.join(', ')}`, { field: '/outcome' });
    if (b.out_refund_no !== undefined && (typeof b.out_refund_no !== 'string' || !OUT_REFUND_NO.test(b.out_refund_no))) throw new ApiFailure(400, 'PARAM_ERROR', 'out_refund_no must be a refund number', { field: '/out_refund_no' });
    const count = b.count ?? 1;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) throw new ApiFailure(400, 'PARAM_ERROR', 'count must be a positive integer', { field: '/count' });
    const a: ArmedOutcome = { outcome: b.outcome as RefundOutcome, out_refund_no: b.out_refund_no as string | undefined, count };
    // A refund already PROCESSING under that number (any merchant) takes the outcome at once.
    if (a.out_refund_no) {
      const pending = Object.values(this.store.state.refunds).filter((r) => r.out_refund_no === a.out_refund_no && r.status === 'PROCESSING');
      for (const r of pending) {
        r.outcome = a.outcome;
        this.store.putRefund(r);
      }
      if (pending.length) return { ...a, count: 0 };
    }
    this.armed.push(a);
    return a;
  }

  armedOutcomes(): ArmedOutcome[] {
    return this.armed.map((a) => ({ ...a }));
  }

  clearArmed(): void {
    this.armed = [];
  }
}

/** Every refund in the order they were made (the page and /sandbox/refunds). */
export function refundsOf(store: StateStore): StoredRefund[] {
  return Object.values(store.state.refunds);
}
