/**
 * How an order is shown: its display status (a create refused by WeChat Pay is "failed", never
 * "waiting for scan"), its kind tag, sub-order labels, the new-QR request for a failed sale and
 * the close rule's countdown. Pure functions so the rules are testable without a browser.
 */
import type { CreateOrderRequest, Order, OrderState } from './contract';
import { FINAL_STATES } from './contract';

/** What a status badge says: WeChat's trade state, or that the payment code was never created. */
export type DisplayStatus = OrderState | 'CREATE_FAILED';

export function creationFailed(o: Order): boolean {
  return o.creation === 'FAILED';
}

export function displayStatus(o: Order): DisplayStatus {
  // A refused create stays NOTPAY in trade_state terms, but no customer can ever pay it.
  if (creationFailed(o) && (o.state === 'NOTPAY' || o.state === 'USERPAYING')) return 'CREATE_FAILED';
  return o.state;
}

/** Still waiting for the customer: not final and really created (or still being created). */
export function isWaiting(o: Order): boolean {
  return !FINAL_STATES.includes(o.state) && !creationFailed(o);
}

/** Failed for good from the till's point of view: a new QR is the way on. */
export function isFailed(o: Order): boolean {
  return o.state === 'PAYERROR' || displayStatus(o) === 'CREATE_FAILED';
}

/** Contract §2 `kind`; absent on orders recorded before single-merchant sales existed: combined. */
export function orderKind(o: Order): 'single' | 'combine' {
  return (o as Order & { kind?: string }).kind === 'single' ? 'single' : 'combine';
}

/**
 * The same sale again, as a new order: the same merchants, goods descriptions and amounts.
 * `attach` is left out: the relay fills it with the new order's number.
 */
export function sameSaleRequest(o: Order): CreateOrderRequest {
  return {
    sub_orders: o.sub_orders.map((s) => ({ mchid: s.mchid, description: s.description, amount: s.amount })),
    ...(o.description ? { description: o.description } : {}),
  };
}

/**
 * Idempotency-Key of "new QR for this failed sale": derived from the failed order, so a double
 * press (or a retry after a lost answer) gets the one replacement order, never two.
 */
export function sameSaleKey(o: Order): string {
  return `again-${o.combine_out_trade_no}`.slice(0, 128);
}

/**
 * A sub-order's line: "merchant · goods", or just the merchant when the description is the
 * merchant's name (a typed amount is described by the merchant's name for the payer's bill).
 */
export function subLabel(merchantName: string | undefined, description: string): string {
  if (!merchantName || description.trim() === merchantName.trim()) return description;
  return `${merchantName} · ${description}`;
}

/** Contract: a manager may close an unpaid order 5 minutes after it was created. */
export const CLOSE_MIN_AGE_MS = 5 * 60_000;

/**
 * Seconds until a close is allowed (0 = now). The relay's CLOSE_TOO_EARLY answer
 * (`retryUntil`, epoch ms) overrides the local 5-minute estimate.
 */
export function closeWaitSeconds(o: Order, now: number, retryUntil?: number): number {
  const until = retryUntil ?? Date.parse(o.created_at) + CLOSE_MIN_AGE_MS;
  return Number.isFinite(until) ? Math.max(0, Math.ceil((until - now) / 1000)) : 0;
}

/** Default of the confirmation threshold when settings do not carry `confirm_above_fen`: ¥5,000. */
export const DEFAULT_CONFIRM_ABOVE_FEN = 500_000;

/** The threshold above which 收款 asks for confirmation (a setting when the terminal has one). */
export function confirmAboveFen(settings: object | null | undefined): number {
  const v = (settings as { confirm_above_fen?: unknown } | null | undefined)?.confirm_above_fen;
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : DEFAULT_CONFIRM_ABOVE_FEN;
}

export function needsConfirmation(totalFen: number, limitFen: number): boolean {
  return totalFen > limitFen;
}
