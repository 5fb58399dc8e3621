/**
 * Refunds on SQLite (table `refunds`, migration in ../db.ts). Synchronous better-sqlite3 inside,
 * each method one immediate transaction (the write lock first: two records of one sub-order are
 * serialized, so the sum never exceeds what was paid); a status change stamps the order's feed
 * cursor in the same transaction (OrderStore.touchInTx) and the Change is emitted after the commit.
 * Order objects built by OrderStore carry their refunds through its decorator hook.
 */
import type { Order } from '../../contracts/relay-api';
import type { Db } from '../db';
import type { Change, OrderStore } from '../store';
import { decorateRefunds } from '../refund-view';
import {
  COUNTING, movesForward, watchAfter,
  type NewRefund, type RefundApplyResult, type RefundDecisionInput, type RefundMismatch, type RefundNotification, type RefundRecordInput,
  type RefundRecordResult, type RefundRow, type RefundsRepo, type RefundTotal, type RefundUpdate,
} from '../repo-refunds';

export class SqliteRefunds implements RefundsRepo {
  private readonly s;

  constructor(private readonly db: Db, private readonly core: OrderStore) {
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
      lease: db.prepare('UPDATE refunds SET next_check_ms = ? WHERE out_refund_no = ?'),
      pendingNow: db.prepare("UPDATE refunds SET next_check_ms = 0 WHERE watch = 1 AND status = 'PENDING'"),
      list: db.prepare(`SELECT * FROM refunds WHERE created_ms >= ? AND created_ms < ? AND status != 'FAILED'
        AND (@status IS NULL OR status = @status OR (@status = 'PROCESSING' AND status = 'PENDING')) ORDER BY created_ms DESC LIMIT @limit`),
      totals: db.prepare("SELECT mchid, COUNT(*) AS count, SUM(amount) AS amount FROM refunds WHERE status = 'SUCCESS' AND created_ms >= ? AND created_ms < ? GROUP BY mchid"),
      totalsOf: db.prepare(`SELECT r.mchid AS mchid, COUNT(*) AS count, SUM(r.amount) AS amount FROM refunds r JOIN orders o ON o.combine_out_trade_no = r.combine_out_trade_no
        WHERE r.status = 'SUCCESS' AND r.created_ms >= ? AND r.created_ms < ? AND o.terminal = ? GROUP BY r.mchid`),
      notification: db.prepare('INSERT OR IGNORE INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES (?, ?, ?, ?, ?)'),
    };
    // Every order object carries its refunds (contract §2): built with the order. Only a paid
    // order can have refunds: the others are not read.
    core.decorate((order: Order) => decorateRefunds(order, order.state === 'SUCCESS' ? this.ofOrderSync(order.combine_out_trade_no) : []));
  }

  private getSync(no: string): RefundRow | undefined {
    return this.s.get.get(no) as RefundRow | undefined;
  }

  private ofOrderSync(no: string): RefundRow[] {
    return this.s.ofOrder.all(no) as RefundRow[];
  }

  async get(no: string): Promise<RefundRow | undefined> {
    return this.getSync(no);
  }

  async byIdempotencyKey(terminal: string, key: string): Promise<RefundRow | undefined> {
    return this.s.byKey.get(terminal, key) as RefundRow | undefined;
  }

  async record(input: RefundRecordInput, decide: (d: RefundDecisionInput) => NewRefund): Promise<RefundRecordResult> {
    const out = this.db.transaction((): { result: RefundRecordResult; change: Change | null } => {
      if (input.idempotencyKey !== null) {
        const existing = this.s.byKey.get(input.terminal, input.idempotencyKey) as RefundRow | undefined;
        if (existing) return { result: { kind: 'existing', row: existing }, change: null };
      }
      const order = this.core.row(input.orderNo);
      const subs = order ? this.core.subRows(input.orderNo) : [];
      const sub = subs.find((s) => s.out_trade_no === input.outTradeNo);
      const taken = sub ? (this.s.taken.get(sub.out_trade_no) as { n: number }).n : 0;
      const { row } = decide({ order, subs, taken });
      this.s.insert.run({ ...row });
      const change = this.core.touchInTx(row.combine_out_trade_no, row.created_ms);
      return { result: { kind: 'recorded', row: this.getSync(row.out_refund_no)! }, change };
    }).immediate();
    if (out.change) this.core.emitChange(out.change);
    return out.result;
  }

  /** Inside the caller's transaction: the forward move and the order's Change (null: no move). */
  private updateInTx(row: RefundRow, u: RefundUpdate, now: number): Change | null {
    if (!movesForward(row.status, u.status)) return null;
    const changed = this.s.update.run({
      no: row.out_refund_no, from: row.status, status: u.status, refund_id: u.refund_id ?? null, success_time: u.success_time ?? null,
      error_code: u.error_code ?? null, error_message: u.error_message?.slice(0, 500) ?? null, watch: watchAfter(u.status),
    }).changes;
    if (changed === 0) return null;
    return this.core.touchInTx(row.combine_out_trade_no, now);
  }

  async update(no: string, u: RefundUpdate, now = Date.now()): Promise<boolean> {
    const change = this.db.transaction(() => {
      const row = this.getSync(no);
      return row ? this.updateInTx(row, u, now) : null;
    }).immediate();
    if (change) this.core.emitChange(change);
    return change !== null;
  }

  async note(no: string, code: string, message: string): Promise<void> {
    this.s.note.run(code, message.slice(0, 500), no);
  }

  async schedule(no: string, atMs: number): Promise<void> {
    this.s.schedule.run(atMs, no);
  }

  async claimDue(now: number, limit: number, leaseMs: number): Promise<string[]> {
    return this.db.transaction(() => {
      const nos = (this.s.due.all(now, limit) as { out_refund_no: string }[]).map((r) => r.out_refund_no);
      for (const no of nos) this.s.lease.run(now + leaseMs, no);
      return nos;
    }).immediate();
  }

  async resumePending(): Promise<void> {
    // One process owns the file: a PENDING refund's create may never have reached WeChat Pay.
    this.s.pendingNow.run();
  }

  async list(dayStartMs: number, status: string | null, limit: number): Promise<RefundRow[]> {
    return this.s.list.all(dayStartMs, dayStartMs + 86_400_000, { status, limit }) as RefundRow[];
  }

  async totals(fromMs: number, toMs: number, terminal?: string): Promise<RefundTotal[]> {
    return (terminal === undefined ? this.s.totals.all(fromMs, toMs) : this.s.totalsOf.all(fromMs, toMs, terminal)) as RefundTotal[];
  }

  async ofOrder(no: string): Promise<RefundRow[]> {
    return this.ofOrderSync(no);
  }

  async applyNotification(n: RefundNotification, decide: (row: RefundRow) => RefundMismatch | null, now = Date.now()): Promise<RefundApplyResult> {
    const out = this.db.transaction((): { result: RefundApplyResult; change: Change | null } => {
      const row = this.getSync(n.outRefundNo);
      if (!row) return { result: { kind: 'unknown' }, change: null };
      const wrong = decide(row);
      if (wrong) return { result: { kind: 'mismatch', ...wrong, row }, change: null };
      const moves = movesForward(row.status, n.update.status);
      if (this.s.notification.run(n.id, row.combine_out_trade_no, n.eventType, new Date(now).toISOString(), moves ? 1 : 0).changes === 0) {
        return { result: { kind: 'duplicate' }, change: null };
      }
      const change = this.updateInTx(row, n.update, now);
      return { result: { kind: 'applied', changed: change !== null, row: change ? this.getSync(row.out_refund_no)! : row }, change };
    }).immediate();
    if (out.change) this.core.emitChange(out.change);
    return out.result;
  }
}
