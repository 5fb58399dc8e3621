/**
 * Refunds (addendum "Refunds"): `POST /v3/refund/domestic/refunds` and
 * `GET /v3/refund/domestic/refunds/{out_refund_no}`. A refund is made by the sub-order's own
 * merchant: call these with that merchant's requester (its keys sign, its key verifies).
 * Input is checked before anything is sent; answers are verified by the requester, then
 * checked against a lenient schema (unknown fields kept).
 */
import { z } from 'zod';
import { ResponseError, ValidationError } from './errors';
import { jsonAnswer, type SignedRequester } from './endpoint';
import type { RefundRequest, RefundResult } from './models';
import { validateCurrency, validateFen, validateNotifyUrl, validateObject, validatePattern, validateText } from './validate';

/** `out_refund_no`: string(64) of `[0-9A-Za-z_\-|*@]`. */
export const OUT_REFUND_NO = /^[0-9A-Za-z_\-|*@]{1,64}$/;
/**
 * The refunded order's `out_trade_no` (a sub-order's or a basic order's): any number WeChat Pay
 * may have accepted at creation, so the widest documented alphabet, ≤ 32.
 */
const REFUND_OUT_TRADE_NO = /^[0-9A-Za-z_\-|*@]{1,32}$/;
/** `transaction_id`: string(32); digits in practice, letters tolerated (never URL-encoded). */
export const TRANSACTION_ID = /^[0-9A-Za-z]{1,32}$/;
export const REFUND_STATUSES = ['SUCCESS', 'CLOSED', 'PROCESSING', 'ABNORMAL'] as const;

export function validateOutRefundNo(field: string, v: unknown): string {
  return validatePattern(field, v, OUT_REFUND_NO, '1–64 characters of [0-9A-Za-z_-|*@]');
}

/** Validates and returns the exact body to send (documented fields only, no nulls). */
export function buildRefundBody(req: RefundRequest): RefundRequest {
  validateObject('/', req);
  const hasTx = req.transaction_id !== undefined && req.transaction_id !== null;
  const hasNo = req.out_trade_no !== undefined && req.out_trade_no !== null;
  if (hasTx && hasNo) throw new ValidationError('/transaction_id', 'give transaction_id or out_trade_no, not both');
  if (!hasTx && !hasNo) throw new ValidationError('/out_trade_no', 'is required (or transaction_id)');
  const out_refund_no = validateOutRefundNo('/out_refund_no', req.out_refund_no);
  const amount = validateObject('/amount', req.amount);
  const refund = validateFen('/amount/refund', amount.refund);
  const total = validateFen('/amount/total', amount.total);
  if (refund > total) throw new ValidationError('/amount/refund', `must not exceed /amount/total (${refund} > ${total} fen)`);
  const currency = validateCurrency('/amount/currency', amount.currency);
  const body: RefundRequest = hasTx
    ? { transaction_id: validatePattern('/transaction_id', req.transaction_id, TRANSACTION_ID, '1–32 letters or digits'), out_refund_no, amount: { refund, total, currency } }
    : { out_trade_no: validatePattern('/out_trade_no', req.out_trade_no, REFUND_OUT_TRADE_NO, '1–32 characters of [0-9A-Za-z_-|*@]'), out_refund_no, amount: { refund, total, currency } };
  // The issue and the page say 80 characters (string(80)); counted as characters here.
  const reason = validateText('/reason', req.reason, { maxChars: 80 });
  if (reason !== undefined && reason !== '') body.reason = reason;
  const notify_url = validateNotifyUrl('/notify_url', req.notify_url, { required: false, maxChars: 256 });
  if (notify_url !== undefined) body.notify_url = notify_url;
  if (req.funds_account !== undefined && req.funds_account !== null) {
    if (req.funds_account !== 'AVAILABLE') throw new ValidationError('/funds_account', `must be AVAILABLE when given, got ${JSON.stringify(req.funds_account)}`);
    body.funds_account = 'AVAILABLE';
  }
  return body;
}

const refundAmount = z.looseObject({
  total: z.number().int(),
  refund: z.number().int(),
  from: z.array(z.looseObject({ account: z.string(), amount: z.number().int() })).optional(),
  payer_total: z.number().int().optional(),
  payer_refund: z.number().int().optional(),
  settlement_refund: z.number().int().optional(),
  settlement_total: z.number().int().optional(),
  discount_refund: z.number().int().optional(),
  currency: z.string().optional(),
  refund_fee: z.number().int().optional(),
});

export const refundResultSchema = z.looseObject({
  refund_id: z.string().min(1),
  out_refund_no: z.string().min(1),
  transaction_id: z.string().min(1),
  out_trade_no: z.string().min(1),
  channel: z.string().optional(),
  user_received_account: z.string().optional(),
  success_time: z.string().optional(),
  create_time: z.string().optional(),
  status: z.enum(REFUND_STATUSES),
  funds_account: z.string().optional(),
  amount: refundAmount,
  promotion_detail: z.array(z.unknown()).optional(),
});

/** Checks the shape of a refund answer; the reason names the first wrong field. */
export function parseRefundResult(value: unknown): { ok: true; value: RefundResult } | { ok: false; reason: string } {
  const r = refundResultSchema.safeParse(value);
  if (r.success) return { ok: true, value: r.data as unknown as RefundResult };
  const issue = r.error.issues[0]!;
  return { ok: false, reason: `/${issue.path.join('/')}: ${issue.message}` };
}

function refundAnswer(res: Parameters<typeof jsonAnswer>[0], what: string, outRefundNo: string): RefundResult {
  const r = parseRefundResult(jsonAnswer(res, what));
  if (!r.ok) throw new ResponseError(`${what} answer is not a refund: ${r.reason}`);
  // A verified answer about another refund is not an answer to this call.
  if (r.value.out_refund_no !== outRefundNo) throw new ResponseError(`${what} answer is about refund ${r.value.out_refund_no}, not ${outRefundNo}`);
  return r.value;
}

/**
 * Creates (or, with the same `out_refund_no`, asks again for) a refund. Safe to retry: the same
 * number is the same refund, so the requester's retries and a caller's re-send after a timeout
 * cannot refund twice.
 */
export async function createRefund(api: SignedRequester, req: RefundRequest): Promise<RefundResult> {
  const body = buildRefundBody(req);
  const res = await api.request({ method: 'POST', path: '/v3/refund/domestic/refunds', body, idempotent: true });
  return refundAnswer(res, 'refund', body.out_refund_no);
}

/** `GET /v3/refund/domestic/refunds/{out_refund_no}` (404 RESOURCE_NOT_EXISTS → ApiError). */
export async function queryRefund(api: SignedRequester, outRefundNo: string): Promise<RefundResult> {
  validateOutRefundNo('out_refund_no', outRefundNo);
  // `|` and `@` are percent-encoded; the transport signs the path exactly as it is sent.
  const res = await api.request({ method: 'GET', path: `/v3/refund/domestic/refunds/${encodeURIComponent(outRefundNo)}`, idempotent: true });
  return refundAnswer(res, 'refund query', outRefundNo);
}
