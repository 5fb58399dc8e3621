/**
 * Combine Native orders (reference §4): request validation (before anything is sent), request
 * bodies built field by field in the documented shape, and lenient typed results.
 */
import { z } from 'zod';
import { ValidationError } from './errors';
import type { CombineCloseRequest, CombineNativeRequest, CombineOrderResult } from './models';
import {
  validateAttach, validateCurrency, validateDescription, validateFen, validateMchid, validateNotifyUrl, validateObject,
  validateOrderNo, validateSceneInfo, validateSettleInfo, validateText, validateTimeExpire,
} from './validate';

// The shared checks live in validate.ts; these stay importable from here as before.
export { ORDER_NO, validateOrderNo, validateTimeExpire } from './validate';
// Per-sub-order cap "1000万", unit unconfirmed (§0): the reference's reading (yuan) is enforced.
export const MAX_SUB_ORDER_FEN = 1_000_000_000;

function subOrderList(field: string, v: unknown): unknown[] {
  if (!Array.isArray(v)) throw new ValidationError(field, 'must be an array');
  // Merchant mode: 2–10 (a single sale must use basic Native, §0).
  if (v.length < 2 || v.length > 10) throw new ValidationError(field, `must have 2–10 sub-orders, got ${v.length}`);
  return v;
}

/** Validates and returns the exact body to send (documented fields only, no nulls). */
export function buildCombineNativeBody(req: CombineNativeRequest): CombineNativeRequest {
  validateObject('/', req);
  const combine_appid = validateText('/combine_appid', req.combine_appid, { required: true, maxBytes: 32 })!;
  const combine_mchid = validateMchid('/combine_mchid', req.combine_mchid);
  const combine_out_trade_no = validateOrderNo('/combine_out_trade_no', req.combine_out_trade_no);
  const body: CombineNativeRequest = { combine_appid, combine_mchid, combine_out_trade_no, sub_orders: [], notify_url: '' };
  // device_id: string(16), no minimum (addendum; older docs said at least 7).
  const scene_info = validateSceneInfo(req.scene_info);
  if (scene_info) body.scene_info = scene_info;
  const seen = new Set<string>();
  subOrderList('/sub_orders', req.sub_orders).forEach((raw, i) => {
    const f = `/sub_orders/${i}`;
    const o = validateObject(f, raw) as unknown as CombineNativeRequest['sub_orders'][number];
    const mchid = validateMchid(`${f}/mchid`, o.mchid);
    const attach = validateAttach(`${f}/attach`, o.attach, true)!;
    const amount = o.amount as { total_amount?: unknown; currency?: unknown } | undefined;
    if (!amount || typeof amount !== 'object') throw new ValidationError(`${f}/amount`, 'is required');
    const total = validateFen(`${f}/amount/total_amount`, amount.total_amount, MAX_SUB_ORDER_FEN);
    validateCurrency(`${f}/amount/currency`, amount.currency);
    const out_trade_no = validateOrderNo(`${f}/out_trade_no`, o.out_trade_no);
    if (seen.has(out_trade_no)) throw new ValidationError(`${f}/out_trade_no`, `repeats ${out_trade_no}: every sub-order needs its own number`);
    seen.add(out_trade_no);
    const description = validateDescription(`${f}/description`, o.description);
    const sub: CombineNativeRequest['sub_orders'][number] = { mchid, attach, amount: { total_amount: total, currency: 'CNY' }, out_trade_no, description };
    const goods_tag = validateText(`${f}/goods_tag`, o.goods_tag, { maxBytes: 32 });
    if (goods_tag !== undefined) sub.goods_tag = goods_tag;
    const settle_info = validateSettleInfo(`${f}/settle_info`, o.settle_info);
    if (settle_info) sub.settle_info = settle_info;
    body.sub_orders.push(sub);
  });
  if (req.time_expire !== undefined && req.time_expire !== null) body.time_expire = validateTimeExpire('/time_expire', req.time_expire);
  body.notify_url = validateNotifyUrl('/notify_url', req.notify_url, { required: true, maxChars: 255 })!;
  return body;
}

/** Validates a close request: the same 2–10 sub-orders as at creation (checked by the caller). */
export function buildCombineCloseBody(combineOutTradeNo: string, req: CombineCloseRequest): CombineCloseRequest {
  validateOrderNo('combine_out_trade_no', combineOutTradeNo);
  validateObject('/', req);
  const combine_appid = validateText('/combine_appid', req.combine_appid, { required: true, maxBytes: 32 })!;
  const seen = new Set<string>();
  const sub_orders = subOrderList('/sub_orders', req.sub_orders).map((raw, i) => {
    const o = raw as { mchid?: unknown; out_trade_no?: unknown };
    if (!o || typeof o !== 'object') throw new ValidationError(`/sub_orders/${i}`, 'must be an object');
    const mchid = validateMchid(`/sub_orders/${i}/mchid`, o.mchid);
    const out_trade_no = validateOrderNo(`/sub_orders/${i}/out_trade_no`, o.out_trade_no);
    if (seen.has(out_trade_no)) throw new ValidationError(`/sub_orders/${i}/out_trade_no`, `repeats ${out_trade_no}`);
    seen.add(out_trade_no);
    return { mchid, out_trade_no };
  });
  return { combine_appid, sub_orders };
}

/** The close request for an order: exactly its sub-orders of creation (partial close is impossible). */
export function closeRequestFor(created: Pick<CombineNativeRequest, 'combine_appid' | 'sub_orders'>): CombineCloseRequest {
  return { combine_appid: created.combine_appid, sub_orders: created.sub_orders.map((o) => ({ mchid: o.mchid, out_trade_no: o.out_trade_no })) };
}

// Results are parsed leniently: new fields may appear at any time (§1.3) and are kept.
const amountSchema = z.looseObject({
  total_amount: z.number().int(),
  currency: z.string().optional(),
  payer_amount: z.number().int().optional(),
  payer_currency: z.string().optional(),
  settlement_rate: z.number().optional(),
});
const subOrderResult = z.looseObject({
  mchid: z.string().min(1),
  trade_state: z.string().min(1),
  out_trade_no: z.string().min(1),
  amount: amountSchema,
  trade_type: z.string().optional(),
  bank_type: z.string().optional(),
  attach: z.string().optional(),
  success_time: z.string().optional(),
  transaction_id: z.string().optional(),
  promotion_detail: z.array(z.looseObject({ coupon_id: z.string(), amount: z.number().int() })).optional(),
});
export const combineOrderResultSchema = z.looseObject({
  combine_appid: z.string(),
  combine_mchid: z.string().min(1),
  combine_out_trade_no: z.string().min(1),
  scene_info: z.looseObject({ device_id: z.string().optional() }).optional(),
  combine_payer_info: z.looseObject({ openid: z.string().optional() }).optional(),
  sub_orders: z.array(subOrderResult).min(1),
});

/** Checks the shape of a query result / decrypted notification; null + reason when it is wrong. */
export function parseCombineOrderResult(value: unknown): { ok: true; value: CombineOrderResult } | { ok: false; reason: string } {
  const r = combineOrderResultSchema.safeParse(value);
  if (r.success) return { ok: true, value: r.data as unknown as CombineOrderResult };
  const issue = r.error.issues[0]!;
  return { ok: false, reason: `${'/' + issue.path.join('/')}: ${issue.message}` };
}
