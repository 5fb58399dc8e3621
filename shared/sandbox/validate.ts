/**
 * Request validation with WeChat Pay's field rules (reference §4.1, §4.3): each failure is a
 * PARAM_ERROR whose detail.field is a JSON pointer to the offending field.
 */
import { isIP } from 'node:net';
import type { CombineCloseRequest, CombineNativeRequest, NativeRequest } from '../wechatpay/models';
import { parseRfc3339 } from '../wechatpay/time';
import { MAX_SUB_ORDER_FEN } from '../wechatpay/combine';
import { paramError } from './errors';

const ORDER_NO = /^[0-9A-Za-z_\-|*]{6,32}$/;
/** 1000万 yuan per sub-order (unit UNCONFIRMED in the reference; yuan assumed): the protocol's one constant. */
const MAX_SUB_AMOUNT = MAX_SUB_ORDER_FEN;

type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** APIv3 accepts only UTF-8 characters of 1–3 bytes: no emoji. */
function hasFourByteChar(s: string): boolean {
  return /[\u{10000}-\u{10FFFF}]/u.test(s);
}

function str(o: Obj, key: string, ptr: string, opts: { required?: boolean; max?: number; min?: number; pattern?: RegExp } = {}): string | undefined {
  const v = o[key];
  const field = `${ptr}/${key}`;
  if (v === undefined || v === null) {
    if (opts.required) throw paramError(field, '字段缺失 (required)');
    return undefined;
  }
  if (typeof v !== 'string') throw paramError(field, '字段类型错误，应为字符串 (must be a string)', v);
  const n = [...v].length;
  if (n < (opts.min ?? (opts.required ? 1 : 0))) throw paramError(field, `长度不足 (at least ${opts.min ?? 1} characters)`, v);
  if (opts.max !== undefined && n > opts.max) throw paramError(field, `超出最大长度 ${opts.max} (at most ${opts.max} characters)`, v);
  if (opts.pattern && !opts.pattern.test(v)) throw paramError(field, '格式错误 (invalid format)', v);
  if (hasFourByteChar(v)) throw paramError(field, '包含不支持的字符 (4-byte UTF-8 characters such as emoji are not accepted)', v);
  return v;
}

export function validateCreate(body: unknown): CombineNativeRequest {
  if (!isObj(body)) throw paramError('', '请求体应为JSON对象 (body must be a JSON object)');
  str(body, 'combine_appid', '', { required: true, max: 32 });
  str(body, 'combine_mchid', '', { required: true, max: 32 });
  str(body, 'combine_out_trade_no', '', { required: true, min: 6, max: 32, pattern: ORDER_NO });
  if (body.scene_info !== undefined) {
    if (!isObj(body.scene_info)) throw paramError('/scene_info', '应为对象 (must be an object)');
    // device_id: string(16), no minimum (addendum; older docs gave a minimum of 7).
    str(body.scene_info, 'device_id', '/scene_info', { max: 16 });
    const ip = str(body.scene_info, 'payer_client_ip', '/scene_info', { required: true, max: 45 });
    if (!isIP(ip!)) throw paramError('/scene_info/payer_client_ip', '不是合法的IP地址 (not an IPv4/IPv6 address)', ip);
  }
  const subs = body.sub_orders;
  if (subs === undefined) throw paramError('/sub_orders', '字段缺失 (required)');
  if (!Array.isArray(subs)) throw paramError('/sub_orders', '应为数组 (must be an array)');
  // Merchant mode: 2–10 sub-orders (one merchant alone must use basic Native).
  if (subs.length < 2 || subs.length > 10) throw paramError('/sub_orders', `子单数量应为2-10笔 (2 to 10 sub-orders, got ${subs.length})`);
  const seen = new Set<string>();
  subs.forEach((s, i) => {
    const p = `/sub_orders/${i}`;
    if (!isObj(s)) throw paramError(p, '应为对象 (must be an object)');
    str(s, 'mchid', p, { required: true, max: 32 });
    str(s, 'attach', p, { required: true, max: 128 });
    const no = str(s, 'out_trade_no', p, { required: true, min: 6, max: 32, pattern: ORDER_NO })!;
    if (seen.has(no)) throw paramError(`${p}/out_trade_no`, '子单商户订单号重复 (out_trade_no repeated within the order)', no);
    seen.add(no);
    str(s, 'description', p, { required: true, max: 127 });
    str(s, 'goods_tag', p, { max: 32 });
    if (!isObj(s.amount)) throw paramError(`${p}/amount`, s.amount === undefined ? '字段缺失 (required)' : '应为对象 (must be an object)');
    const total = s.amount.total_amount;
    if (total === undefined) throw paramError(`${p}/amount/total_amount`, '字段缺失 (required)');
    if (typeof total !== 'number' || !Number.isInteger(total) || total <= 0 || total > MAX_SUB_AMOUNT) {
      throw paramError(`${p}/amount/total_amount`, '金额应为正整数（单位：分） (must be a positive integer number of fen)', total);
    }
    const currency = str(s.amount, 'currency', `${p}/amount`, { required: true, max: 8 });
    if (currency !== 'CNY') throw paramError(`${p}/amount/currency`, '仅支持CNY (only CNY)', currency);
    if (s.settle_info !== undefined) {
      if (!isObj(s.settle_info)) throw paramError(`${p}/settle_info`, '应为对象 (must be an object)');
      const ps = s.settle_info.profit_sharing;
      if (ps !== undefined && typeof ps !== 'boolean') throw paramError(`${p}/settle_info/profit_sharing`, '应为布尔值 (must be a boolean)', ps);
    }
  });
  const te = str(body, 'time_expire', '', { max: 64 });
  if (te !== undefined && !parseRfc3339(te)) throw paramError('/time_expire', '时间格式错误，应为yyyy-MM-DDTHH:mm:ss+08:00 (RFC 3339)', te);
  notifyUrl(str(body, 'notify_url', '', { required: true, max: 255 })!);
  return body as unknown as CombineNativeRequest;
}

/** An absolute http(s) URL without query string (orders and refunds alike). */
export function notifyUrl(notify: string): void {
  let url: URL;
  try {
    url = new URL(notify);
  } catch {
    throw paramError('/notify_url', '不是合法的URL (not an absolute URL)', notify);
  }
  // Real WeChat Pay wants HTTPS on the internet; the sandbox also accepts http for local receivers.
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw paramError('/notify_url', '仅支持http(s) (must be http or https)', notify);
  if (url.search || notify.includes('?')) throw paramError('/notify_url', '不允许携带查询串 (must not carry a query string)', notify);
}

export function validateClose(body: unknown): CombineCloseRequest {
  if (!isObj(body)) throw paramError('', '请求体应为JSON对象 (body must be a JSON object)');
  str(body, 'combine_appid', '', { required: true, max: 32 });
  const subs = body.sub_orders;
  if (subs === undefined) throw paramError('/sub_orders', '字段缺失 (required)');
  if (!Array.isArray(subs) || subs.length === 0) throw paramError('/sub_orders', '应为非空数组 (must be a non-empty array)');
  subs.forEach((s, i) => {
    const p = `/sub_orders/${i}`;
    if (!isObj(s)) throw paramError(p, '应为对象 (must be an object)');
    str(s, 'mchid', p, { required: true, max: 32 });
    str(s, 'out_trade_no', p, { required: true, min: 6, max: 32, pattern: ORDER_NO });
  });
  return body as unknown as CombineCloseRequest;
}

/** JSON with sorted keys: two requests are "the same" whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObj(v)) return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** Basic Native out_trade_no: 6–32 of `[0-9A-Za-z_\-*]` (the basic page). */
const NATIVE_NO = /^[0-9A-Za-z_\-*]{6,32}$/;

/** `POST /v3/pay/transactions/native` (addendum "Basic Native"). */
export function validateNative(body: unknown): NativeRequest {
  if (!isObj(body)) throw paramError('', '请求体应为JSON对象 (body must be a JSON object)');
  str(body, 'appid', '', { required: true, max: 32 });
  str(body, 'mchid', '', { required: true, max: 32 });
  str(body, 'description', '', { required: true, max: 127 });
  str(body, 'out_trade_no', '', { required: true, min: 6, max: 32, pattern: NATIVE_NO });
  str(body, 'attach', '', { max: 128 });
  str(body, 'goods_tag', '', { max: 32 });
  if (body.support_fapiao !== undefined && typeof body.support_fapiao !== 'boolean') throw paramError('/support_fapiao', '应为布尔值 (must be a boolean)', body.support_fapiao);
  if (!isObj(body.amount)) throw paramError('/amount', body.amount === undefined ? '字段缺失 (required)' : '应为对象 (must be an object)');
  const total = body.amount.total;
  if (total === undefined) throw paramError('/amount/total', '字段缺失 (required)');
  if (typeof total !== 'number' || !Number.isInteger(total) || total <= 0 || total > MAX_SUB_AMOUNT) {
    throw paramError('/amount/total', '金额应为正整数（单位：分） (must be a positive integer number of fen)', total);
  }
  const currency = str(body.amount, 'currency', '/amount', { max: 16 });
  if (currency !== undefined && currency !== 'CNY') throw paramError('/amount/currency', '仅支持CNY (only CNY)', currency);
  if (body.scene_info !== undefined) {
    if (!isObj(body.scene_info)) throw paramError('/scene_info', '应为对象 (must be an object)');
    // string(16), no minimum, as for combine (addendum "Settled").
    str(body.scene_info, 'device_id', '/scene_info', { max: 16 });
    const ip = str(body.scene_info, 'payer_client_ip', '/scene_info', { required: true, max: 45 });
    if (!isIP(ip!)) throw paramError('/scene_info/payer_client_ip', '不是合法的IP地址 (not an IPv4/IPv6 address)', ip);
  }
  if (body.settle_info !== undefined) {
    if (!isObj(body.settle_info)) throw paramError('/settle_info', '应为对象 (must be an object)');
    const ps = body.settle_info.profit_sharing;
    if (ps !== undefined && typeof ps !== 'boolean') throw paramError('/settle_info/profit_sharing', '应为布尔值 (must be a boolean)', ps);
  }
  const te = str(body, 'time_expire', '', { max: 64 });
  if (te !== undefined && !parseRfc3339(te)) throw paramError('/time_expire', '时间格式错误，应为yyyy-MM-DDTHH:mm:ss+08:00 (RFC 3339)', te);
  notifyUrl(str(body, 'notify_url', '', { required: true, max: 255 })!);
  return body as unknown as NativeRequest;
}
