/**
 * Counter operations on the relay (extension): order timeline, terminal-reported order events,
 * shifts (交班) and their reports, the manager's day-end (日结), and the manager PIN that elevates
 * a cashier terminal for a few minutes. Pure types: relay, terminal services and renderer share them.
 * Money is integer fen; times are ISO 8601 strings.
 */

/** One step in an order's life, oldest first. `by` is a terminal name, `auto` (the relay) or `wechatpay`. */
export interface TimelineEntry {
  at: string;
  type:
    | 'created' | 'qr_issued' | 'create_failed' | 'printed' | 'paid' | 'closed' | 'close_refused'
    | 'refund' | 'audit';
  by: string | null;
  /** Type-specific facts: `via` (notification | query) for paid, `kind`/`reprint` for printed, … */
  detail: Record<string, unknown>;
}

export interface OrderTimeline {
  combine_out_trade_no: string;
  entries: TimelineEntry[];
}

/** `POST /v1/orders/{no}/events`: what a terminal did with an order (printing, for now). */
export interface OrderEventRequest {
  type: 'printed';
  kind: 'slip' | 'receipt';
  reprint: boolean;
}

export interface Shift {
  id: number;
  terminal: string;
  /** The cashier's name as given when the shift was opened ("" when none). */
  cashier: string;
  opened_at: string;
  closed_at: string | null;
  closed_by: string | null;
}

/** Figures of one merchant in a report. A sale counts once per merchant it contains. */
export interface MerchantFigures {
  mchid: string;
  name: string;
  /** Paid sales with a sub-order of this merchant. */
  count: number;
  /** Fen paid to this merchant. */
  amount: number;
  refund_count: number;
  refund_amount: number;
  /** amount − refund_amount */
  net: number;
}

export interface RefundFigures {
  count: number;
  amount: number;
  /** False while the relay keeps no refund records: then count and amount are 0 and `note` says so. */
  available: boolean;
  note: string | null;
}

export interface ReportTotals {
  /** Paid sales (one per order, however many sub-orders). */
  count: number;
  amount: number;
}

export interface ShiftReport {
  shift: Shift;
  /** The span covered: opened_at → closed_at (or now while the shift is open). */
  from: string;
  to: string;
  sales: ReportTotals;
  merchants: MerchantFigures[];
  refunds: RefundFigures;
  /** sales.amount − refunds.amount */
  net: number;
  /** This terminal's orders still waiting for payment (not failed at creation) when the report was made. */
  open_orders: ReportTotals;
  /** Orders created in the span that ended unpaid (closed, failed). */
  unpaid: { closed: number; failed: number };
  generated_at: string;
}

/** Bill reconciliation of the day for one merchant: the last run's status, or NEVER_RUN. */
export type DayEndBillStatus = 'OK' | 'NO_STATEMENT' | 'NOT_READY' | 'NO_KEYS' | 'FAILED' | 'NEVER_RUN';

export interface DayEndMerchant extends MerchantFigures {
  bill_status: DayEndBillStatus;
  /** Differences that run found for this merchant. */
  bill_mismatches: number;
}

export interface DayEndReport {
  date: string;
  sales: ReportTotals;
  merchants: DayEndMerchant[];
  terminals: { terminal: string; count: number; amount: number }[];
  refunds: RefundFigures;
  net: number;
  /** Every terminal's orders created that day still waiting for payment. */
  open_orders: ReportTotals;
  /** When the day's last bill run happened, or null. */
  bill_run_at: string | null;
  shifts: Shift[];
  generated_at: string;
}

export interface ManagerPinStatus {
  set: boolean;
  set_at: string | null;
}

/** `POST /v1/manager/unlock` answer: the elevation goes in `X-Manager-Elevation` until `expires_at`. */
export interface ManagerElevation {
  elevation: string;
  expires_at: string;
}
