/**
 * The refunds part of the store seam (repo-types.ts): one implementation per engine
 * (sqlite/refunds.ts, pg/refunds.ts). The service (refunds.ts) holds the logic; the decisions
 * taken inside a transaction are pure synchronous callbacks it passes in.
 *
 * Local status: PENDING (recorded, WeChat Pay has not confirmed it yet), PROCESSING, SUCCESS,
 * CLOSED, ABNORMAL, FAILED (WeChat Pay refused it outright: it never existed there). PENDING is
 * shown as PROCESSING in the contract object; FAILED refunds are kept (audit) but never shown.
 */
import type { RefundStatus } from '../contracts/relay-api';
import type { OrderRow, SubOrderRow } from './repo-types';

export type LocalRefundStatus = 'PENDING' | RefundStatus | 'FAILED';

export interface RefundRow {
  out_refund_no: string;
  combine_out_trade_no: string;
  out_trade_no: string;
  mchid: string;
  amount: number;
  /** the sub-order's total (WeChat's `amount.total`) */
  total: number;
  reason: string | null;
  status: LocalRefundStatus;
  refund_id: string | null;
  created_at: string;
  created_ms: number;
  success_time: string | null;
  terminal: string;
  idempotency_key: string | null;
  request_hash: string;
  error_code: string | null;
  error_message: string | null;
  watch: number;
  next_check_ms: number;
  check_attempts: number;
}

export interface NewRefund {
  row: Omit<RefundRow, 'refund_id' | 'success_time' | 'error_code' | 'error_message' | 'watch' | 'check_attempts'>;
}

/** What a status change carries (from an answer, a query or a notification). */
export interface RefundUpdate {
  status: RefundStatus | 'FAILED';
  refund_id?: string | null;
  success_time?: string | null;
  error_code?: string | null;
  error_message?: string | null;
}

/**
 * What is taken from a sub-order's paid amount: every refund that may return (or has returned)
 * money. CLOSED returned nothing and FAILED never existed at WeChat Pay: their amount is free
 * again. ABNORMAL counts (WeChat Pay counts it: the money left and is stuck on the way).
 */
export const COUNTING_STATUSES: readonly LocalRefundStatus[] = ['PENDING', 'PROCESSING', 'SUCCESS', 'ABNORMAL'];
/** COUNTING_STATUSES as an SQL list (the same text on both engines). */
export const COUNTING = `(${COUNTING_STATUSES.map((s) => `'${s}'`).join(',')})`;

/** Order of statuses: a change only ever moves forward (a late PROCESSING answer never undoes SUCCESS). */
export const RANK: Record<LocalRefundStatus, number> = { PENDING: 0, PROCESSING: 1, ABNORMAL: 2, SUCCESS: 3, CLOSED: 3, FAILED: 3 };
export const FINAL_REFUND = new Set<LocalRefundStatus>(['SUCCESS', 'CLOSED', 'FAILED']);

/** Does `to` move a refund now at `from` forward (RANK)? Same status or backwards: no. */
export function movesForward(from: LocalRefundStatus, to: LocalRefundStatus): boolean {
  return RANK[to] > RANK[from];
}

/**
 * `watch` after a change to `status`: SUCCESS, CLOSED, FAILED: nothing more to ask. ABNORMAL: a
 * manual matter on the merchant platform; its later notification still applies, but it is not
 * polled forever.
 */
export function watchAfter(status: LocalRefundStatus): 0 | 1 {
  return FINAL_REFUND.has(status) || status === 'ABNORMAL' ? 0 : 1;
}

/** What `record` reads inside its transaction for the service's decision. */
export interface RefundDecisionInput {
  /** undefined: no such order. */
  order: OrderRow | undefined;
  subs: SubOrderRow[];
  /** What COUNTING refunds already take of the chosen sub-order (0 when it is not one of `subs`). */
  taken: number;
}

export interface RefundRecordInput {
  /** The relay's order number (combine_out_trade_no). */
  orderNo: string;
  /** The sub-order the refund takes from. */
  outTradeNo: string;
  terminal: string;
  idempotencyKey: string | null;
}

/**
 * `existing`: (terminal, idempotencyKey) was already taken — by an earlier request or, at the
 * same moment, another relay's — and `row` is that refund; nothing was decided or written.
 */
export type RefundRecordResult = { kind: 'recorded'; row: RefundRow } | { kind: 'existing'; row: RefundRow };

/** A REFUND.* notification as the repository applies it. */
export interface RefundNotification {
  /** The envelope's id: stored once in `notifications` (a duplicate, on any relay, stops there). */
  id: string;
  eventType: string;
  outRefundNo: string;
  update: RefundUpdate;
}

/** The mismatch the service's check found (nothing is written, the id is not kept). */
export interface RefundMismatch {
  alertKind: string;
  message: string;
}

export type RefundApplyResult =
  | { kind: 'unknown' }
  | { kind: 'mismatch'; alertKind: string; message: string; row: RefundRow }
  | { kind: 'duplicate' }
  /** changed: false when the refund was already at (or past) that status: the id is kept anyway. */
  | { kind: 'applied'; changed: boolean; row: RefundRow };

export interface RefundTotal {
  mchid: string;
  count: number;
  amount: number;
}

export interface RefundsRepo {
  get(no: string): Promise<RefundRow | undefined>;
  byIdempotencyKey(terminal: string, key: string): Promise<RefundRow | undefined>;
  /**
   * ONE transaction: the idempotency key's refund if it exists (→ `existing`), else the order,
   * its sub-orders and what COUNTING refunds take of `outTradeNo` → `decide` (pure, synchronous:
   * throws to refuse, nothing written) → the insert and the order's new feed cursor. Two records
   * of one sub-order never both see the amount one of them takes (SQLite: immediate transaction;
   * PostgreSQL: the feed lock taken first serializes them across relays).
   */
  record(input: RefundRecordInput, decide: (d: RefundDecisionInput) => NewRefund): Promise<RefundRecordResult>;
  /**
   * Moves a refund forward (RANK) and stamps its order's feed cursor, in one transaction. false
   * when it is unknown or already at or past that status.
   */
  update(no: string, u: RefundUpdate, now?: number): Promise<boolean>;
  /** The error of a failure after which WeChat Pay may have acted (no status change, no push). */
  note(no: string, code: string, message: string): Promise<void>;
  /** Next check at `atMs` (check_attempts + 1). */
  schedule(no: string, atMs: number): Promise<void>;
  /**
   * Up to `limit` watched refunds due at `now`, each leased to the caller (next_check_ms moved to
   * now + leaseMs in the same transaction; PostgreSQL: FOR UPDATE SKIP LOCKED): no other relay
   * claims it until the caller reschedules it or the lease runs out.
   */
  claimDue(now: number, limit: number, leaseMs: number): Promise<string[]>;
  /**
   * On start. SQLite (one process): PENDING refunds (a crash between record and send?) are due at
   * once. PostgreSQL: nothing (another relay may be sending them; their lease brings them due).
   */
  resumePending(): Promise<void>;
  /** Refunds created in the Beijing day from `dayStartMs`, newest first; FAILED never; PROCESSING includes PENDING. */
  list(dayStartMs: number, status: string | null, limit: number): Promise<RefundRow[]>;
  /**
   * reports.ts RefundLedger: SUCCESS refunds initiated in [fromMs, toMs) (the bill dates a refund
   * by its initiation), of orders made at `terminal` when given, per merchant.
   */
  totals(fromMs: number, toMs: number, terminal?: string): Promise<RefundTotal[]>;
  /** The order's refunds except FAILED ones, oldest first (created_ms, out_refund_no). */
  ofOrder(no: string): Promise<RefundRow[]>;
  /**
   * ONE transaction: the refund by out_refund_no (none → unknown), `decide(row)` (a mismatch →
   * nothing written, the id not kept), the id into `notifications` (taken → duplicate), the
   * forward-only status change and the order's feed cursor.
   */
  applyNotification(n: RefundNotification, decide: (row: RefundRow) => RefundMismatch | null, now?: number): Promise<RefundApplyResult>;
}
