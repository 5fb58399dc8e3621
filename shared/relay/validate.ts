/** Input checks for POST /v1/orders: every refusal names the field at fault. */
import { createHash } from 'node:crypto';
import { MAX_EXPIRE_MINUTES, MAX_SUB_ORDERS } from '../contracts/relay-api';
import { MAX_SUB_ORDER_FEN } from '../wechatpay/combine';
import { ATTACH_MAX_BYTES, DESCRIPTION_MAX_BYTES } from '../wechatpay/validate';
import { BadRequest } from './errors';

export interface ValidSubOrder {
  mchid: string;
  description: string;
  amount: number;
  attach: string | null;
}

export interface ValidOrderInput {
  sub_orders: ValidSubOrder[];
  description: string | null;
  expire_minutes: number;
}

/** Sub-orders (merchants) in one sale: WeChat Pay's combined payment takes at most ten. */
export { MAX_SUB_ORDERS };

/** Per-sub-order cap: the client's one rule ("1000万" taken as yuan = 10^9 fen, UNCONFIRMED unit). */
export const MAX_SUB_AMOUNT = MAX_SUB_ORDER_FEN;

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Characters that cannot be printed or shown honestly: C0/C1 controls, lone surrogates (they
 * would be stored as invalid UTF-8), bidi controls (U+202E can make a receipt line read
 * backwards), line/paragraph separators, zero-width characters and the BOM.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const SEPARATOR = /[\u2028\u2029]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const INVISIBLE = /[\u00ad\u180e\u200b-\u200d\u2060-\u2064\ufeff]/;

/**
 * The one text rule of the relay: why `v` cannot be stored and shown as given, or null.
 * APIv3 also accepts only 1–3-byte UTF-8 characters (no emoji).
 */
export function textProblem(v: string): string | null {
  if (LONE_SURROGATE.test(v)) return 'must not contain lone surrogates (invalid Unicode)';
  if (CONTROL.test(v)) return 'must not contain control characters';
  if (BIDI.test(v)) return 'must not contain bidirectional control characters (such as U+202E)';
  if (SEPARATOR.test(v)) return 'must not contain line or paragraph separators (U+2028/U+2029)';
  if (INVISIBLE.test(v)) return 'must not contain zero-width or invisible characters';
  if (/[\u{10000}-\u{10FFFF}]/u.test(v)) return 'must not contain 4-byte characters such as emoji';
  return null;
}

/** A text field: type, presence, length in UTF-8 bytes, then textProblem. */
export function text(field: string, v: unknown, maxBytes: number, required: boolean): string | null {
  if (v === undefined || v === null) {
    if (required) throw new BadRequest(field, 'is required');
    return null;
  }
  if (typeof v !== 'string') throw new BadRequest(field, 'must be a string');
  if (required && v.trim() === '') throw new BadRequest(field, 'must not be empty');
  const problem = textProblem(v);
  if (problem) throw new BadRequest(field, problem);
  if (utf8(v) > maxBytes) throw new BadRequest(field, `is ${utf8(v)} UTF-8 bytes, at most ${maxBytes} allowed`);
  return v;
}

export function validateCreateOrder(body: unknown, allowedMchids: Set<string>, defaultExpireMinutes: number): ValidOrderInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  const subs = b.sub_orders;
  if (!Array.isArray(subs)) throw new BadRequest('sub_orders', 'must be an array');
  // One sub-order: a single-merchant sale (basic Native); 2–10: a combined sale (merchant-mode
  // combine takes at most 10 sub-orders, reference §0). More cannot be paid with one QR code.
  if (subs.length === 0) throw new BadRequest('sub_orders', 'needs at least one sub-order');
  if (subs.length > MAX_SUB_ORDERS) {
    throw new BadRequest('sub_orders', `has ${subs.length} sub-orders; one sale can pay at most ${MAX_SUB_ORDERS} merchants: split the sale into several sales of up to ${MAX_SUB_ORDERS}`);
  }
  const sub_orders = subs.map((s, i): ValidSubOrder => {
    const f = `sub_orders[${i}]`;
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new BadRequest(f, 'must be an object');
    const o = s as Record<string, unknown>;
    if (typeof o.mchid !== 'string' || o.mchid === '') throw new BadRequest(`${f}.mchid`, 'is required');
    if (!allowedMchids.has(o.mchid)) throw new BadRequest(`${f}.mchid`, `${o.mchid} is not a configured sub-merchant`);
    const description = text(`${f}.description`, o.description, DESCRIPTION_MAX_BYTES, true)!;
    const amount = o.amount;
    if (typeof amount !== 'number' || !Number.isInteger(amount)) throw new BadRequest(`${f}.amount`, 'must be an integer number of fen');
    if (amount <= 0) throw new BadRequest(`${f}.amount`, 'must be positive');
    if (amount > MAX_SUB_AMOUNT) throw new BadRequest(`${f}.amount`, `must be at most ${MAX_SUB_AMOUNT} fen`);
    const attach = text(`${f}.attach`, o.attach, ATTACH_MAX_BYTES, false);
    return { mchid: o.mchid, description, amount, attach };
  });
  const description = text('description', b.description, DESCRIPTION_MAX_BYTES, false);
  let expire_minutes = defaultExpireMinutes;
  if (b.expire_minutes !== undefined && b.expire_minutes !== null) {
    const e = b.expire_minutes;
    // WeChat raises values under 1 minute and caps validity at 7 days (reference §4.1).
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 1 || e > MAX_EXPIRE_MINUTES) throw new BadRequest('expire_minutes', `must be an integer from 1 to ${MAX_EXPIRE_MINUTES}`);
    expire_minutes = e;
  }
  return { sub_orders, description, expire_minutes };
}

export function requestHash(input: ValidOrderInput): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('hex');
}

export function validIdempotencyKey(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  const k = Array.isArray(v) ? v[0]! : v;
  if (!/^[\x21-\x7e]{1,128}$/.test(k)) throw new BadRequest('Idempotency-Key', '1–128 printable ASCII characters');
  return k;
}
