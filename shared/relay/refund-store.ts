/**
 * Refunds in SQLite (table `refunds`, migration in db.ts): rows ↔ contract refund objects, the
 * remaining-amount check and insert in ONE immediate transaction, and every status change
 * together with its order's new version/feed cursor (store.touchInTx), so it is pushed as
 * `order.updated` of that order.
 *
 * Local status: PENDING (recorded, WeChat Pay has not confirmed it yet), PROCESSING, SUCCESS,
 * CLOSED, ABNORMAL, FAILED (WeChat Pay refused it outright: it never existed there). PENDING is
 * shown as PROCESSING in the contract object; FAILED refunds are kept (audit) but never shown.
 */
import { randomBytes } from 'node:crypto';
import type { Order, Refund, RefundStatus } from '../contracts/relay-api';
import type { Db } from './db';
import type { Change, OrderStore } from './store';
import { decorateRefunds, toRefund } from './refund-view';

export { toRefund };

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

/**
 * What is taken from a sub-order's paid amount: every refund that may return (or has returned)
 * money. CLOSED returned nothing and FAILED never existed at WeChat Pay: their amount is free
 * again. ABNORMAL counts (WeChat Pay counts it: the money left and is stuck on the way).
 */
export const COUNTING = "('PENDING','PROCESSING','SUCCESS','ABNORMAL')";

/** Order of statuses: a change only ever moves forward (a late PROCESSING answer never undoes SUCCESS). */
export const RANK: Record<LocalRefundStatus, number> = { PENDING: 0, PROCESSING: 1, ABNORMAL: 2, SUCCESS: 3, CLOSED: 3, FAILED: 3 };
export const FINAL_REFUND = new Set<LocalRefundStatus>(['SUCCESS', 'CLOSED', 'FAILED']);

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `R` + 9 base36 digits of ms + 10 random base62: `[0-9A-Za-z]`, 20 characters, time-sortable. */
export function newOutRefundNo(now = Date.now()): string {
  let tail = '';
  while (tail.length < 10) for (const b of randomBytes(16)) if (b < 248 && tail.length < 10) tail += B62[b % 62];
  return 'R' + now.toString(36).toUpperCase().padStart(9, '0') + tail;
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

export class RefundStore {
  private readonly s;

  constructor(readonly db: Db, private readonly orders: OrderStore) {
    this.s = {
      get: db.prepare('SELECT * FROM refunds WHERE out_refund_no = ?'),
      byKey: db.prepare('SELECT * FROM refunds WHERE terminal = ? AND idempotency_key = ?'),
      ofOrder: db.prepare("SELECT * FROM refunds WHERE combine_out_trade_no = ? AND status != 'FAILED' ORDER BY created_ms, out_refund_no"),
      taken: db.prepare(`SELECT COALESCE(SUM(amount), 0) AS n FROM refunds WHERE out_trade_no = ? AND status IN ${COUNTING}`),
      insert: db.prepare(`INSERT INTO refunds (out_refund_no, combine_out_trade_no, out_trade_no, mchid, amount, total, reason, status, created_at, created_ms,
        terminal, idempotency_key, request_hash, next_check_ms) VALUES (@out_refund_no, @combine_out_trade_no, @out_trade_no, @mchid, @amount, @total, @reason,
        @status, @created_at, @created_ms, @terminal, @idempotency_key, @request_hash, @next_check_ms)`),
      update: db.prepare(`UPDATE refunds SET status = @status, refund_id = COALESCE(@refund_id, refund_id), success_time = COALESCE(@success_time, success_time),
        error_code = @error_code, error_message = @error_message, watch = @watch WHERE out_refund_no = @no AND status = @from`),
      note: db.prepare('UPDATE refunds SET error_code = ?, error_message = ? WHERE out_refund_no = ?'),
      schedule: db.prepare('UPDATE refunds SET next_check_ms = ?, check_attempts = check_attempts + 1 WHERE out_refund_no = ?'),
      due: db.prepare('SELECT out_refund_no FROM refunds WHERE watch = 1 AND next_check_ms <= ? ORDER BY next_check_ms LIMIT ?'),
      pendingNow: db.prepare("UPDATE refunds SET next_check_ms = 0 WHERE watch = 1 AND status = 'PENDING'"),
      list: db.prepare(`SELECT * FROM refunds WHERE created_ms >= ? AND created_ms < ? AND status != 'FAILED'
        AND (@status IS NULL OR status = @status OR (@status = 'PROCESSING' AND status = 'PENDING')) ORDER BY created_ms DESC LIMIT @limit`),
    };
    // Every order object carries its refunds (contract §2): built with the order.
    orders.decorate((order) => this.decorate(order));
  }

  get(no: string): RefundRow | undefined {
    return this.s.get.get(no) as RefundRow | undefined;
  }

  byIdempotencyKey(terminal: string, key: string): RefundRow | undefined {
    return this.s.byKey.get(terminal, key) as RefundRow | undefined;
  }

  /** Already taken from that sub-order's paid amount (see COUNTING). */
  taken(outTradeNo: string): number {
    return (this.s.taken.get(outTradeNo) as { n: number }).n;
  }

  /** Inside the caller's transaction: the refund row and its order's new version. */
  insertInTx(r: NewRefund): Change | null {
    this.s.insert.run({ ...r.row });
    return this.orders.touchInTx(r.row.combine_out_trade_no, r.row.created_ms);
  }

  /**
   * Moves a refund forward (RANK) inside the caller's transaction; null when it is already at or
   * past that status. Returns the order's Change (emit it after the commit).
   */
  updateInTx(row: RefundRow, u: RefundUpdate, now = Date.now()): Change | null {
    if (RANK[u.status] <= RANK[row.status] && !(row.status === 'ABNORMAL' && (u.status === 'SUCCESS' || u.status === 'CLOSED'))) return null;
    if (u.status === row.status) return null;
    const changed = this.s.update.run({
      no: row.out_refund_no, from: row.status, status: u.status, refund_id: u.refund_id ?? null, success_time: u.success_time ?? null,
      error_code: u.error_code ?? null, error_message: u.error_message?.slice(0, 500) ?? null,
      // SUCCESS, CLOSED, FAILED: nothing more to ask. ABNORMAL: a manual matter on the merchant
      // platform; its later notification still applies, but it is not polled forever.
      watch: FINAL_REFUND.has(u.status) || u.status === 'ABNORMAL' ? 0 : 1,
    }).changes;
    if (changed === 0) return null;
    return this.orders.touchInTx(row.combine_out_trade_no, now);
  }

  /** updateInTx in its own transaction, then the push. */
  update(no: string, u: RefundUpdate): boolean {
    const change = this.db.transaction(() => {
      const row = this.get(no);
      return row ? this.updateInTx(row, u) : null;
    }).immediate();
    if (change) this.orders.emitChange(change);
    return change !== null;
  }

  note(no: string, code: string, message: string): void {
    this.s.note.run(code, message.slice(0, 500), no);
  }

  schedule(no: string, atMs: number): void {
    this.s.schedule.run(atMs, no);
  }

  due(now: number, limit: number): string[] {
    return (this.s.due.all(now, limit) as { out_refund_no: string }[]).map((r) => r.out_refund_no);
  }

  /** On start: refunds whose create may never have reached WeChat Pay (a crash) are due at once. */
  resumePending(): void {
    this.s.pendingNow.run();
  }

  list(dayStartMs: number, status: string | null, limit: number): Refund[] {
    return (this.s.list.all(dayStartMs, dayStartMs + 86_400_000, { status, limit }) as RefundRow[]).map(toRefund);
  }

  /**
   * reports.ts RefundLedger: SUCCESS refunds initiated in [fromMs, toMs) (the bill dates a refund
   * by its initiation), of orders made at `terminal` when given, per merchant.
   */
  totals(fromMs: number, toMs: number, terminal?: string): { mchid: string; count: number; amount: number }[] {
    const sql = terminal === undefined
      ? "SELECT mchid, COUNT(*) AS count, SUM(amount) AS amount FROM refunds WHERE status = 'SUCCESS' AND created_ms >= ? AND created_ms < ? GROUP BY mchid"
      : "SELECT r.mchid AS mchid, COUNT(*) AS count, SUM(r.amount) AS amount FROM refunds r JOIN orders o ON o.combine_out_trade_no = r.combine_out_trade_no WHERE r.status = 'SUCCESS' AND r.created_ms >= ? AND r.created_ms < ? AND o.terminal = ? GROUP BY r.mchid";
    return this.db.prepare(sql).all(...[fromMs, toMs, ...(terminal === undefined ? [] : [terminal])]) as { mchid: string; count: number; amount: number }[];
  }

  ofOrder(no: string): RefundRow[] {
    return this.s.ofOrder.all(no) as RefundRow[];
  }

  /**
   * `refunds`, and per sub-order `refunded_amount` (SUCCESS refunds: money back with the buyer)
   * and the extension `refundable_amount` (what a new refund may still take: paid minus COUNTING).
   * Only a paid order can have refunds: the others are not read.
   */
  private decorate(order: Order): void {
    decorateRefunds(order, order.state === 'SUCCESS' ? this.ofOrder(order.combine_out_trade_no) : []);
  }

}
