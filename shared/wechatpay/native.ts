/**
 * Basic Native (addendum "Basic Native"): one merchant's sale, signed with that merchant's keys.
 * `POST /v3/pay/transactions/native`, query by `out_trade_no` or `transaction_id` (`?mchid=`),
 * close (`204`). Validation is shared with the combine calls (validate.ts); results are parsed
 * leniently (unknown fields kept).
 */
import { z } from 'zod';
import { ResponseError, ValidationError } from './errors';
import { checkCloseAnswer, isAlreadyClosed, jsonAnswer, type SignedRequester } from './endpoint';
import type { NativeOrderResult, NativeRequest, NativeResponse } from './models';
import { TRANSACTION_ID } from './refund';
import {
  validateAttach, validateCurrency, validateDescription, validateFen, validateMchid, validateNotifyUrl, validateObject,
  validatePattern, validateSceneInfo, validateSettleInfo, validateText, validateTimeExpire,
} from './validate';

/**
 * Basic `out_trade_no`: 6–32 of `[0-9A-Za-z_\-*]` (the basic page). `*` survives
 * encodeURIComponent and URL normalization, so the signed path is the path sent.
 */
export const NATIVE_OUT_TRADE_NO = /^[0-9A-Za-z_\-*]{6,32}$/;

export function validateNativeOutTradeNo(field: string, v: unknown): string {
  return validatePattern(field, v, NATIVE_OUT_TRADE_NO, '6–32 characters of [0-9A-Za-z_-*]');
}

/** Validates and returns the exact body to send (documented fields only, no nulls). */
export function buildNativeBody(req: NativeRequest): NativeRequest {
  validateObject('/', req);
  const appid = validateText('/appid', req.appid, { required: true, maxBytes: 32 })!;
  const mchid = validateMchid('/mchid', req.mchid);
  const description = validateDescription('/description', req.description);
  const out_trade_no = validateNativeOutTradeNo('/out_trade_no', req.out_trade_no);
  const amount = validateObject('/amount', req.amount);
  const total = validateFen('/amount/total', amount.total);
  // currency is optional on the basic page (default CNY); sent explicitly either way.
  if (amount.currency !== undefined && amount.currency !== null) validateCurrency('/amount/currency', amount.currency);
  const body: NativeRequest = { appid, mchid, description, out_trade_no, notify_url: '', amount: { total, currency: 'CNY' } };
  if (req.time_expire !== undefined && req.time_expire !== null) body.time_expire = validateTimeExpire('/time_expire', req.time_expire);
  const attach = validateAttach('/attach', req.attach, false);
  if (attach !== undefined) body.attach = attach;
  body.notify_url = validateNotifyUrl('/notify_url', req.notify_url, { required: true, maxChars: 255 })!;
  const goods_tag = validateText('/goods_tag', req.goods_tag, { maxBytes: 32 });
  if (goods_tag !== undefined) body.goods_tag = goods_tag;
  if (req.support_fapiao !== undefined && req.support_fapiao !== null) {
    if (typeof req.support_fapiao !== 'boolean') throw new ValidationError('/support_fapiao', 'must be a boolean');
    body.support_fapiao = req.support_fapiao;
  }
  // The addendum settles device_id as string(16) with no minimum (official example "POS1:1").
  const scene_info = validateSceneInfo(req.scene_info);
  if (scene_info) body.scene_info = scene_info;
  const settle_info = validateSettleInfo('/settle_info', req.settle_info);
  if (settle_info) body.settle_info = settle_info;
  return body;
}

export const nativeOrderResultSchema = z.looseObject({
  appid: z.string().optional(),
  mchid: z.string().min(1),
  out_trade_no: z.string().min(1),
  transaction_id: z.string().optional(),
  trade_type: z.string().optional(),
  trade_state: z.string().min(1),
  trade_state_desc: z.string().optional(),
  bank_type: z.string().optional(),
  attach: z.string().optional(),
  success_time: z.string().optional(),
  payer: z.looseObject({ openid: z.string().optional() }).optional(),
  amount: z.looseObject({
    total: z.number().int().optional(),
    payer_total: z.number().int().optional(),
    currency: z.string().optional(),
    payer_currency: z.string().optional(),
  }).optional(),
  scene_info: z.looseObject({ device_id: z.string().optional() }).optional(),
  promotion_detail: z.array(z.looseObject({ coupon_id: z.string(), amount: z.number().int() })).optional(),
});

/**
 * A paid basic order (the `TRANSACTION.SUCCESS` resource): what a payment cannot be without —
 * the appid, the WeChat order id and the amount, which the receiver checks against its order.
 */
export const nativePaidResultSchema = nativeOrderResultSchema.extend({
  appid: z.string().min(1),
  transaction_id: z.string().min(1),
  amount: z.looseObject({
    total: z.number().int(),
    payer_total: z.number().int().optional(),
    currency: z.string().optional(),
    payer_currency: z.string().optional(),
  }),
});

function firstIssue(e: z.ZodError): string {
  const issue = e.issues[0]!;
  return `/${issue.path.join('/')}: ${issue.message}`;
}

/** Checks a basic query answer; `paid`: the stricter shape of a payment notification. */
export function parseNativeOrderResult(value: unknown, opts: { paid?: boolean } = {}): { ok: true; value: NativeOrderResult } | { ok: false; reason: string } {
  const r = (opts.paid ? nativePaidResultSchema : nativeOrderResultSchema).safeParse(value);
  return r.success ? { ok: true, value: r.data as unknown as NativeOrderResult } : { ok: false, reason: firstIssue(r.error) };
}

/**
 * `POST /v3/pay/transactions/native` → `code_url`. Re-sending the identical body renews the
 * code_url (and invalidates the previous one); the requester's retries rely on that.
 */
export async function createNative(api: SignedRequester, req: NativeRequest): Promise<NativeResponse> {
  const body = buildNativeBody(req);
  const res = await api.request({ method: 'POST', path: '/v3/pay/transactions/native', body, idempotent: true });
  const j = jsonAnswer(res, 'native create') as { code_url?: unknown } | null;
  if (typeof j?.code_url !== 'string' || !j.code_url) throw new ResponseError('native create answer has no code_url');
  return { code_url: j.code_url };
}

function orderAnswer(res: Parameters<typeof jsonAnswer>[0], what: string, mchid: string, check: (r: NativeOrderResult) => string | null): NativeOrderResult {
  const r = parseNativeOrderResult(jsonAnswer(res, what));
  if (!r.ok) throw new ResponseError(`${what} answer is not a basic order: ${r.reason}`);
  if (r.value.mchid !== mchid) throw new ResponseError(`${what} answer is for merchant ${r.value.mchid}, not ${mchid}`);
  const wrong = check(r.value);
  if (wrong) throw new ResponseError(`${what} answer is about ${wrong}`);
  return r.value;
}

/** `GET /v3/pay/transactions/out-trade-no/{no}?mchid=…` (404 ORDER_NOT_EXIST → ApiError). */
export async function queryNative(api: SignedRequester, mchid: string, outTradeNo: string): Promise<NativeOrderResult> {
  validateMchid('mchid', mchid);
  validateNativeOutTradeNo('out_trade_no', outTradeNo);
  const res = await api.request({ method: 'GET', path: `/v3/pay/transactions/out-trade-no/${encodeURIComponent(outTradeNo)}?mchid=${mchid}`, idempotent: true });
  return orderAnswer(res, 'native query', mchid, (r) => (r.out_trade_no === outTradeNo ? null : `order ${r.out_trade_no}, not ${outTradeNo}`));
}

/** `GET /v3/pay/transactions/id/{transaction_id}?mchid=…`. */
export async function queryNativeById(api: SignedRequester, mchid: string, transactionId: string): Promise<NativeOrderResult> {
  validateMchid('mchid', mchid);
  validatePattern('transaction_id', transactionId, TRANSACTION_ID, '1–32 letters or digits');
  const res = await api.request({ method: 'GET', path: `/v3/pay/transactions/id/${transactionId}?mchid=${mchid}`, idempotent: true });
  return orderAnswer(res, 'native query', mchid, (r) => (r.transaction_id === transactionId ? null : `transaction ${r.transaction_id ?? '(none)'}, not ${transactionId}`));
}

/**
 * `POST /v3/pay/transactions/out-trade-no/{no}/close {mchid}` → 204. Close is re-entrant for
 * basic orders; a 400 ORDER_CLOSED is taken as closed too. 202 USER_PAYING and every other
 * refusal (ORDER_PAID…) throw ApiError: query and act on trade_state.
 */
export async function closeNative(api: SignedRequester, mchid: string, outTradeNo: string): Promise<void> {
  validateMchid('/mchid', mchid);
  validateNativeOutTradeNo('out_trade_no', outTradeNo);
  try {
    const res = await api.request({ method: 'POST', path: `/v3/pay/transactions/out-trade-no/${encodeURIComponent(outTradeNo)}/close`, body: { mchid }, idempotent: true });
    checkCloseAnswer(res);
  } catch (err) {
    if (isAlreadyClosed(err)) return;
    throw err;
  }
}
