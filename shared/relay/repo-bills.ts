/**
 * The bills part of the store seam (repo-types.ts): one implementation per engine
 * (sqlite/bills.ts, pg/bills.ts). The service (bills.ts) decides what a mismatch is; this holds
 * the statements: a per-run staging area for the bills' rows, the comparison pages, the run's
 * record, and the claim that keeps two relays from running the same bill date at once.
 *
 * Memory: nothing here holds a whole bill. Rows go in as batches (one transaction each) and come
 * out as keyset pages of at most `limit` rows; the caller keeps only totals and capped mismatches.
 */
import type { ReconciliationReport } from '../contracts/relay-api';

/**
 * A batch of staged rows as flat triplets (no object per row):
 * payments `[out_trade_no, transaction_id, amount, …]`, refunds `[out_refund_no, out_trade_no, amount, …]`.
 * A key staged twice for one merchant keeps its last row.
 */
export type StageBatch = readonly (string | number)[];

/** Where the next page starts; opaque to the caller (each engine's keyset differs). */
export type PageKey = string | number | readonly (string | number)[];

/** A page of rows and where the next one starts: `next` is null when this was the last page. */
export interface Page<R> {
  rows: R[];
  next: PageKey | null;
}

/** A staged payment row of a merchant's bill with the local sub-order of that number, if any. */
export interface BillPaymentRow {
  out_trade_no: string;
  transaction_id: string;
  bill_amount: number;
  /** null: no local sub-order has this number. */
  combine_out_trade_no: string | null;
  local_mchid: string | null;
  local_amount: number | null;
  /** The local order's state. */
  state: string | null;
}

/** A sub-order of an order paid (state SUCCESS) in the day, and whether its merchant's bill has it. */
export interface LocalPaymentRow {
  out_trade_no: string;
  combine_out_trade_no: string;
  mchid: string;
  amount: number;
  transaction_id: string | null;
  /** A staged payment row of its merchant has this out_trade_no. */
  in_bill: boolean;
}

/** A staged refund row of a merchant's bill with the local refund of that number, if any. */
export interface BillRefundRow {
  out_refund_no: string;
  out_trade_no: string;
  bill_amount: number;
  /** null: no local refund has this number. */
  combine_out_trade_no: string | null;
  local_mchid: string | null;
  local_out_trade_no: string | null;
  local_amount: number | null;
  status: string | null;
}

/** A refund initiated in the day that WeChat Pay accepted (not FAILED, not PENDING). */
export interface LocalRefundRow {
  out_refund_no: string;
  out_trade_no: string;
  combine_out_trade_no: string;
  mchid: string;
  amount: number;
  /** A staged refund row of its merchant has this out_refund_no. */
  in_bill: boolean;
}

/** A bill date claimed by this caller, across every relay sharing the database. */
export interface BillClaim {
  readonly billDate: string;
  /** Gives the date back (and the run's connection, if it has one). Idempotent. */
  release(): Promise<void>;
}

/** One run's staging area. The caller uses it from one async flow (no concurrent calls). */
export interface BillRun {
  /** One batch of one merchant's bill rows, in one transaction. */
  stage(mchid: string, payments: StageBatch, refunds: StageBatch): Promise<void>;
  /** Forgets what was staged for a merchant (its bill failed part-way: nothing of it counts). */
  discard(mchid: string): Promise<void>;
  /** A merchant's staged payment rows by out_trade_no, each with its local sub-order. `after` null: from the start. */
  billPage(mchid: string, after: PageKey | null, limit: number): Promise<Page<BillPaymentRow>>;
  /**
   * Sub-orders of up to `limit` orders paid in [dayStartMs, dayEndMs) (paid time, state SUCCESS),
   * in paid order; O(that day's payments) whatever the history.
   */
  localPage(dayStartMs: number, dayEndMs: number, after: PageKey | null, limit: number): Promise<Page<LocalPaymentRow>>;
  /** A merchant's staged refund rows by out_refund_no, each with the local refund of that number. */
  billRefundPage(mchid: string, after: PageKey | null, limit: number): Promise<Page<BillRefundRow>>;
  /** Refunds initiated in [dayStartMs, dayEndMs) that WeChat Pay accepted, in initiation order. */
  localRefundPage(dayStartMs: number, dayEndMs: number, after: PageKey | null, limit: number): Promise<Page<LocalRefundRow>>;
  /** Drops the staging area and releases the run's claim. Idempotent; never throws. */
  drop(): Promise<void>;
}

export interface BillsRepo {
  /**
   * The date for this caller, or null when a run of that date is going on anywhere (this relay
   * or another one on the same database). PostgreSQL: a session advisory lock on a dedicated
   * connection — a relay that dies loses it with its connection.
   */
  claimRun(billDate: string): Promise<BillClaim | null>;
  /** A fresh staging area for the claimed run; its drop() also releases the claim. */
  openRun(claim: BillClaim): Promise<BillRun>;
  /** The run's report (bill_runs row). The audit row is the service's (store.audit.add). */
  recordRun(billDate: string, at: string, by: string, report: ReconciliationReport): Promise<void>;
}
