/**
 * The relay's HTTP and WebSocket contract (../shared/docs/contract.md §2), as types.
 * Pure types and constants: imported by the relay, the terminal services and the renderer.
 * Money is integer fen; times are ISO 8601 strings.
 */

export type OrderState = 'NOTPAY' | 'USERPAYING' | 'SUCCESS' | 'CLOSED' | 'PAYERROR';
export const ORDER_STATES: readonly OrderState[] = ['NOTPAY', 'USERPAYING', 'SUCCESS', 'CLOSED', 'PAYERROR'];
export const FINAL_STATES: readonly OrderState[] = ['SUCCESS', 'CLOSED', 'PAYERROR'];
/** `expire_minutes` of POST /v1/orders: WeChat Pay keeps a QR payable at most 7 days. One limit for relay and terminal. */
export const MAX_EXPIRE_MINUTES = 10_080;
/** Merchants in one sale: 1 = basic Native, 2–10 = combined payment. */
export const MAX_SUB_ORDERS = 10;

/** Local lifecycle beyond WeChat's trade_state (extension): creation failed upstream. */
export type OrderCreation = 'PENDING' | 'CREATED' | 'FAILED';

export interface CatalogItem {
  sku: string;
  name: string;
  /** fen */
  price: number;
}

export interface SubMerchantInfo {
  mchid: string;
  name: string;
  catalog?: CatalogItem[];
}

export interface MerchantsResponse {
  sub_merchants: SubMerchantInfo[];
}

export interface SubOrder {
  mchid: string;
  out_trade_no: string;
  description: string;
  /** fen */
  amount: number;
  attach?: string;
  transaction_id: string | null;
  state: OrderState;
  /** fen refunded to the buyer (SUCCESS refunds of this sub-order); 0 when none. */
  refunded_amount?: number;
  /** Extension, fen: what a new refund may still take (paid minus refunds not CLOSED); 0 unless paid. */
  refundable_amount?: number;
}

/** Refund status (contract §2); a refund the relay recorded but WeChat Pay has not confirmed yet reads PROCESSING. */
export type RefundStatus = 'PROCESSING' | 'SUCCESS' | 'CLOSED' | 'ABNORMAL';

export interface Refund {
  out_refund_no: string;
  /** the order's combine_out_trade_no */
  order: string;
  /** the refunded sub-order */
  out_trade_no: string;
  /** the sub-order's merchant, which signs the refund */
  mchid: string;
  /** fen */
  amount: number;
  reason: string | null;
  status: RefundStatus;
  /** WeChat Pay's refund number, once it answered */
  refund_id: string | null;
  created_at: string;
  success_time: string | null;
  /** the manager terminal that asked for it */
  terminal: string;
  /** Extension: the last failure code while WeChat Pay's answer is awaited (e.g. TIMEOUT), else null. */
  error_code?: string | null;
}

export interface CreateRefundRequest {
  /** the sub-order to refund */
  out_trade_no: string;
  /** fen, positive, at most what is left of that sub-order */
  amount: number;
  /** ≤ 80 characters, shown to the buyer */
  reason?: string;
}

export interface RefundsResponse {
  refunds: Refund[];
}

/**
 * Contract §2: `single` = a one-merchant sale paid with basic Native, `combine` = 2–10 merchants
 * paid with combined payment. `combine_out_trade_no` is the relay's order id for both.
 */
export type OrderKind = 'single' | 'combine';

export interface Order {
  combine_out_trade_no: string;
  /** Always set by this relay; absent only in objects from a relay older than single sales (read: combine). */
  kind?: OrderKind;
  state: OrderState;
  /** fen */
  total_amount: number;
  description: string | null;
  code_url: string | null;
  created_at: string;
  expires_at: string;
  paid_at: string | null;
  closed_at: string | null;
  /** name of the terminal that created it */
  terminal: string;
  sub_orders: SubOrder[];
  /** Refunds of its sub-orders, oldest first (contract §2). */
  refunds?: Refund[];
  /** Extension: PENDING until WeChat answered create, FAILED when it refused. */
  creation?: OrderCreation;
  /** Extension: WeChat's error code when creation failed. */
  error_code?: string | null;
  error_message?: string | null;
  /** Extension: monotonically increasing version, bumped on every change. */
  version?: number;
}

export interface CreateOrderSubOrder {
  mchid: string;
  description: string;
  /** fen, positive integer */
  amount: number;
  attach?: string;
}

export interface CreateOrderRequest {
  sub_orders: CreateOrderSubOrder[];
  description?: string;
  expire_minutes?: number;
}

export interface OrdersResponse {
  orders: Order[];
}

export interface ErrorBody {
  code: string;
  message: string;
  /** 400: the JSON field at fault */
  field?: string;
  /** 409 CLOSE_TOO_EARLY */
  retry_after_seconds?: number;
  /** Extension, 502 UPSTREAM_*: WeChat Pay's own error code. */
  upstream_code?: string | null;
  /** Extension, 409 REFUND_EXCEEDS_PAID: fen still refundable of that sub-order, and what was paid. */
  remaining_amount?: number;
  paid_amount?: number;
  /** Extension, 502 on create: the order as recorded (creation FAILED, error_code set). */
  order?: Order;
}

export interface BillRequest {
  bill_date: string;
}

export type MismatchKind =
  | 'MISSING_IN_BILL'      // paid here, absent from the bill
  | 'UNKNOWN_ORDER'        // in the bill, unknown here
  | 'NOT_PAID_LOCALLY'     // in the bill as paid, not SUCCESS here
  | 'AMOUNT_MISMATCH'      // both sides know it, amounts differ
  | 'MCHID_MISMATCH'       // in a different sub-merchant's bill than recorded
  | 'REFUND_MISSING_IN_BILL' // refunded here (SUCCESS or PROCESSING, initiated that day), no refund row in the merchant's bill
  | 'REFUND_UNKNOWN'       // a refund row in the bill whose out_refund_no is unknown here (or was refused here)
  | 'REFUND_AMOUNT_MISMATCH'; // both sides know the refund, amounts (or merchant) differ

export interface BillMismatch {
  kind: MismatchKind;
  mchid: string;
  out_trade_no: string;
  combine_out_trade_no: string | null;
  transaction_id: string | null;
  /** fen, local */
  local_amount: number | null;
  /** fen, from the bill */
  bill_amount: number | null;
  /** Refund mismatches: the refund's number. */
  out_refund_no?: string;
  message: string;
}

export interface BillMerchantTotals {
  mchid: string;
  name: string;
  /**
   * NO_STATEMENT_EXIST when that merchant had no trades; NOT_READY: STATEMENT_CREATING (WeChat
   * still generating it); NO_KEYS: no `merchants/<mchid>/` keys at the relay, so its own bill
   * cannot be applied for (contract §1.1).
   */
  status: 'OK' | 'NO_STATEMENT' | 'NOT_READY' | 'NO_KEYS' | 'FAILED';
  error?: string;
  bill_count: number;
  /** fen */
  bill_amount: number;
  local_count: number;
  /** fen */
  local_amount: number;
  /** fen, sum of fees in the bill (rounded to fen) */
  fee_amount: number;
  /** Extension: refund rows in the bill and their sum (fen). */
  bill_refund_count?: number;
  bill_refund_amount?: number;
  /** Extension: local refunds initiated that day that WeChat Pay accepted, and their sum (fen). */
  local_refund_count?: number;
  local_refund_amount?: number;
}

export interface ReconciliationReport {
  bill_date: string;
  generated_at: string;
  merchants: BillMerchantTotals[];
  /** The first mismatches found (at most 1,000 are kept); `mismatch_count` counts them all. */
  mismatches: BillMismatch[];
  /** Extension: every mismatch found, also those not kept in `mismatches`. */
  mismatch_count: number;
  /** Extension: true when `mismatches` holds fewer than `mismatch_count`. */
  mismatches_truncated: boolean;
  /** True only when every merchant's bill was compared (OK or NO_STATEMENT) and nothing differed. */
  ok: boolean;
}

export interface Alert {
  id: number;
  kind: 'AMOUNT_MISMATCH' | 'MCHID_MISMATCH' | 'UNKNOWN_ORDER' | string;
  combine_out_trade_no: string | null;
  message: string;
  created_at: string;
}

export interface AlertsResponse {
  alerts: Alert[];
}

/** WebSocket `/v1/events` server → terminal messages. */
export type RelayEvent =
  /**
   * First message after connecting: the current state of open and recent orders. `resync`:
   * sent instead of a `?since=` replay that was too long (or from an unknown cursor).
   */
  | { type: 'snapshot'; orders: Order[]; cursor: number; resync?: true }
  | { type: 'order.updated'; order: Order; cursor?: number }
  | { type: 'bill.progress'; bill_date: string; done: number; total: number; mchid?: string; stage: string }
  | { type: 'alert'; alert: Alert }
  | { type: 'heartbeat'; at: string };

export type RelayEventType = RelayEvent['type'];
