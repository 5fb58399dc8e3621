/**
 * Combine Native orders (reference §4): request validation (before anything is sent), request
 * bodies built field by field in the documented shape, and lenient typed results.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ValidationError } from './errors';
import type { CombineCloseRequest, CombineNativeRequest, CombineOrderResult } from './models';
import { formatBeijing } from './time';

/** Order numbers: 6–32 of [0-9A-Za-z_-] (contract; `|`, `*`, `@` would be URL-encoded in signed paths). */
export const ORDER_NO = /^[0-9A-Za-z_-]{6,32}$/;
const MCHID = /^\d{1,32}$/;
/** WeChat Pay accepts only 1–3 byte UTF-8 characters (§1.3): no emoji. */
const FOUR_BYTE = /[\u{10000}-\u{10FFFF}]/u;
// Per-sub-order cap "1000万", unit unconfirmed (§0): the reference's reading (yuan) is enforced.
export const MAX_SUB_ORDER_FEN = 1_000_000_000;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const chars = (s: string) => [...s].length;

function text(field: string, v: unknown, rule: { required?: boolean; minChars?: number; maxChars?: number; maxBytes?: number }): string | undefined {
  if (v === undefined || v === null) {
    if (rule.required) throw new ValidationError(field, 'is required');
    return undefined;
  }
  if (typeof v !== 'string') throw new ValidationError(field, `must be a string, got ${typeof v}`);
  if (rule.required && v.length === 0) throw new ValidationError(field, 'must not be empty');
  if (FOUR_BYTE.test(v)) throw new ValidationError(field, 'contains a 4-byte UTF-8 character (emoji…), which WeChat Pay refuses');
  if (/[\u0000-\u001f]/.test(v)) throw new ValidationError(field, 'contains a control character');
  if (rule.minChars !== undefined && chars(v) < rule.minChars) throw new ValidationError(field, `must be at least ${rule.minChars} characters`);
  if (rule.maxChars !== undefined && chars(v) > rule.maxChars) throw new ValidationError(field, `must be at most ${rule.maxChars} characters, got ${chars(v)}`);
  if (rule.maxBytes !== undefined && bytes(v) > rule.maxBytes) throw new ValidationError(field, `must be at most ${rule.maxBytes} bytes of UTF-8, got ${bytes(v)}`);
  return v;
}

function pattern(field: string, v: unknown, re: RegExp, what: string): string {
  if (typeof v !== 'string') throw new ValidationError(field, `is required (${what})`);
  if (!re.test(v)) throw new ValidationError(field, `must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

export function validateOrderNo(field: string, v: unknown): string {
  return pattern(field, v, ORDER_NO, '6–32 characters of [0-9A-Za-z_-]');
}

/** `yyyy-MM-ddTHH:mm:ss+08:00` naming a real instant. */
export function validateTimeExpire(field: string, v: string): string {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/.test(v)) throw new ValidationError(field, `must be yyyy-MM-ddTHH:mm:ss+08:00, got ${JSON.stringify(v)}`);
  const t = Date.parse(v);
  // Round-trip: refuses 2025-02-30 and the like, which Date would silently roll over.
  if (Number.isNaN(t) || formatBeijing(t) !== v) throw new ValidationError(field, `is not a valid time: ${v}`);
  return v;
}

function subOrderList(field: string, v: unknown): unknown[] {
  if (!Array.isArray(v)) throw new ValidationError(field, 'must be an array');
  // Merchant mode: 2–10 (a single sale must use basic Native, §0).
  if (v.length < 2 || v.length > 10) throw new ValidationError(field, `must have 2–10 sub-orders, got ${v.length}`);
  return v;
}

/** Validates and returns the exact body to send (documented fields only, no nulls). */
export function buildCombineNativeBody(req: CombineNativeRequest): CombineNativeRequest {
  if (!req || typeof req !== 'object') throw new ValidationError('/', 'request must be an object');
  const combine_appid = text('/combine_appid', req.combine_appid, { required: true, maxBytes: 32 })!;
  const combine_mchid = pattern('/combine_mchid', req.combine_mchid, MCHID, '1–32 digits');
  const combine_out_trade_no = validateOrderNo('/combine_out_trade_no', req.combine_out_trade_no);
  const body: CombineNativeRequest = { combine_appid, combine_mchid, combine_out_trade_no, sub_orders: [], notify_url: '' };
  if (req.scene_info !== undefined && req.scene_info !== null) {
    const s = req.scene_info;
    const payer_client_ip = text('/scene_info/payer_client_ip', s.payer_client_ip, { required: true, maxBytes: 45 })!;
    if (!isIP(payer_client_ip)) throw new ValidationError('/scene_info/payer_client_ip', `must be an IPv4 or IPv6 address, got ${JSON.stringify(payer_client_ip)}`);
    // Older docs say device_id has at least 7 characters: the safe reading is 7–16 (§4.1).
    const device_id = text('/scene_info/device_id', s.device_id, { minChars: 7, maxBytes: 16 });
    body.scene_info = device_id === undefined ? { payer_client_ip } : { device_id, payer_client_ip };
  }
  const seen = new Set<string>();
  subOrderList('/sub_orders', req.sub_orders).forEach((raw, i) => {
    const f = `/sub_orders/${i}`;
    if (!raw || typeof raw !== 'object') throw new ValidationError(f, 'must be an object');
    const o = raw as CombineNativeRequest['sub_orders'][number];
    const mchid = pattern(`${f}/mchid`, o.mchid, MCHID, '1–32 digits');
    const attach = text(`${f}/attach`, o.attach, { required: true, maxBytes: 128 })!;
    const amount = o.amount as { total_amount?: unknown; currency?: unknown } | undefined;
    if (!amount || typeof amount !== 'object') throw new ValidationError(`${f}/amount`, 'is required');
    const total = amount.total_amount;
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total <= 0) {
      throw new ValidationError(`${f}/amount/total_amount`, `must be a positive integer number of fen, got ${JSON.stringify(total)}`);
    }
    if (total > MAX_SUB_ORDER_FEN) throw new ValidationError(`${f}/amount/total_amount`, `exceeds the per-sub-order cap of ${MAX_SUB_ORDER_FEN} fen`);
    if (amount.currency !== 'CNY') throw new ValidationError(`${f}/amount/currency`, `must be CNY, got ${JSON.stringify(amount.currency)}`);
    const out_trade_no = validateOrderNo(`${f}/out_trade_no`, o.out_trade_no);
    if (seen.has(out_trade_no)) throw new ValidationError(`${f}/out_trade_no`, `repeats ${out_trade_no}: every sub-order needs its own number`);
    seen.add(out_trade_no);
    // The reference gives 127 characters; whether WeChat Pay counts characters or UTF-8 bytes is
    // not settled (string(127) elsewhere means bytes). Safe reading: 127 bytes, as the relay does.
    const description = text(`${f}/description`, o.description, { required: true, maxBytes: 127 })!;
    const sub: CombineNativeRequest['sub_orders'][number] = { mchid, attach, amount: { total_amount: total, currency: 'CNY' }, out_trade_no, description };
    const goods_tag = text(`${f}/goods_tag`, o.goods_tag, { maxBytes: 32 });
    if (goods_tag !== undefined) sub.goods_tag = goods_tag;
    if (o.settle_info !== undefined && o.settle_info !== null) {
      const ps = o.settle_info.profit_sharing;
      if (ps !== undefined && typeof ps !== 'boolean') throw new ValidationError(`${f}/settle_info/profit_sharing`, 'must be a boolean');
      sub.settle_info = ps === undefined ? {} : { profit_sharing: ps };
    }
    body.sub_orders.push(sub);
  });
  if (req.time_expire !== undefined && req.time_expire !== null) {
    if (typeof req.time_expire !== 'string') throw new ValidationError('/time_expire', 'must be a string');
    body.time_expire = validateTimeExpire('/time_expire', req.time_expire);
  }
  body.notify_url = validateNotifyUrl(req.notify_url);
  return body;
}

function validateNotifyUrl(v: unknown): string {
  const s = text('/notify_url', v, { required: true, maxChars: 255 })!;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ValidationError('/notify_url', `must be an absolute URL, got ${JSON.stringify(s)}`);
  }
  // HTTPS in production; plain HTTP is tolerated (private lines, the local sandbox).
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ValidationError('/notify_url', 'must be an http(s) URL');
  if (u.search || s.includes('?')) throw new ValidationError('/notify_url', 'must not carry a query string');
  if (u.hash || s.includes('#')) throw new ValidationError('/notify_url', 'must not carry a fragment');
  return s;
}

/** Validates a close request: the same 2–10 sub-orders as at creation (checked by the caller). */
export function buildCombineCloseBody(combineOutTradeNo: string, req: CombineCloseRequest): CombineCloseRequest {
  validateOrderNo('combine_out_trade_no', combineOutTradeNo);
  if (!req || typeof req !== 'object') throw new ValidationError('/', 'request must be an object');
  const combine_appid = text('/combine_appid', req.combine_appid, { required: true, maxBytes: 32 })!;
  const seen = new Set<string>();
  const sub_orders = subOrderList('/sub_orders', req.sub_orders).map((raw, i) => {
    const o = raw as { mchid?: unknown; out_trade_no?: unknown };
    if (!o || typeof o !== 'object') throw new ValidationError(`/sub_orders/${i}`, 'must be an object');
    const mchid = pattern(`/sub_orders/${i}/mchid`, o.mchid, MCHID, '1–32 digits');
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
