/**
 * Orders in SQLite: rows ↔ contract objects, and every state change in one transaction
 * together with its change-feed row (the cursor terminals resume from).
 */
import type { Alert, Order, OrderCreation, OrderState, SubOrder } from '../contracts/relay-api';
import { ORDER_HORIZON_MS, type Db } from './db';

export const OPEN_STATES: readonly OrderState[] = ['NOTPAY', 'USERPAYING'];
const OPEN_SQL = "('NOTPAY','USERPAYING')";

export interface OrderRow {
  combine_out_trade_no: string;
  state: OrderState;
  total_amount: number;
  description: string | null;
  code_url: string | null;
  created_at: string;
  created_ms: number;
  expires_at: string;
  expires_ms: number;
  paid_at: string | null;
  paid_ms: number | null;
  closed_at: string | null;
  updated_ms: number;
  terminal: string;
  creation: OrderCreation;
  error_code: string | null;
  error_message: string | null;
  idempotency_key: string | null;
  request_hash: string;
  request_json: string;
  version: number;
  watch: number;
  next_check_ms: number;
  check_attempts: number;
  cursor: number;
  transaction_ids: string | null;
}

/** What an Order is built from (request_json and scheduling columns stay in the database). */
const ORDER_COLUMNS = `combine_out_trade_no, state, total_amount, description, code_url, created_at, expires_at, paid_at, closed_at,
  terminal, creation, error_code, error_message, version, cursor, transaction_ids`;

export interface SubOrderRow {
  out_trade_no: string;
  combine_out_trade_no: string;
  idx: number;
  mchid: string;
  description: string;
  amount: number;
  attach: string | null;
  transaction_id: string | null;
  state: OrderState;
}

export interface NewOrder {
  row: Omit<OrderRow, 'version' | 'check_attempts' | 'paid_at' | 'paid_ms' | 'closed_at' | 'code_url' | 'error_code' | 'error_message' | 'cursor' | 'transaction_ids'>;
  subs: Omit<SubOrderRow, 'transaction_id' | 'state'>[];
}

/** A transition computed from WeChat's view of the order. */
export interface Transition {
  state: OrderState;
  paidMs?: number | null;
  /** per out_trade_no */
  transactionIds?: Map<string, string | null>;
}

/** `change.order` is built on first access: listeners with nobody to tell never pay for it. */
export type ChangeListener = (change: Change) => void;

export interface Change {
  readonly cursor: number;
  readonly order: Order;
}

/**
 * The sub-orders a notification must carry, as one comparable string: JSON of
 * [mchid, out_trade_no, amount] sorted by out_trade_no (JSON, so no field can spill into the
 * next). Same format as migration 4's SQL backfill.
 */
export function subKey(subs: readonly { mchid: unknown; out_trade_no: unknown; amount: unknown }[]): string {
  const sorted = [...subs].sort((a, b) => (String(a.out_trade_no) < String(b.out_trade_no) ? -1 : String(a.out_trade_no) > String(b.out_trade_no) ? 1 : 0));
  return JSON.stringify(sorted.map((x) => [x.mchid, x.out_trade_no, x.amount]));
}

/** A change whose Order is read (once) only if a listener asks for it. */
function lazyChange(cursor: number, build: () => Order): Change {
  let order: Order | undefined;
  return { cursor, get order() { return (order ??= build()); } };
}

export class OrderStore {
  private readonly s;
  private listeners: ChangeListener[] = [];
  /** Last change-feed cursor handed out (one relay process owns the database). */
  private seq: number;

  constructor(readonly db: Db) {
    this.s = {
      get: db.prepare('SELECT * FROM orders WHERE combine_out_trade_no = ?'),
      subs: db.prepare('SELECT * FROM sub_orders WHERE combine_out_trade_no = ? ORDER BY idx'),
      byKey: db.prepare('SELECT * FROM orders WHERE terminal = ? AND idempotency_key = ?'),
      insert: db.prepare(`INSERT INTO orders (combine_out_trade_no, state, total_amount, description, created_at, created_ms, expires_at, expires_ms,
        updated_ms, terminal, creation, idempotency_key, request_hash, request_json, watch, next_check_ms, sub_key)
        VALUES (@combine_out_trade_no, @state, @total_amount, @description, @created_at, @created_ms, @expires_at, @expires_ms,
        @updated_ms, @terminal, @creation, @idempotency_key, @request_hash, @request_json, @watch, @next_check_ms, @sub_key)`),
      insertSub: db.prepare(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach, state)
        VALUES (@out_trade_no, @combine_out_trade_no, @idx, @mchid, @description, @amount, @attach, 'NOTPAY')`),
      transition: db.prepare(`UPDATE orders SET state = @state, paid_at = @paid_at, paid_ms = @paid_ms, closed_at = @closed_at,
        version = version + 1, updated_ms = @now, cursor = @cursor, transaction_ids = @transaction_ids
        WHERE combine_out_trade_no = @no AND state IN ${OPEN_SQL} AND state != @state RETURNING ${ORDER_COLUMNS}`),
      // Notification path: the sub-order check is part of the WHERE clause (no prior read).
      matching: db.prepare(`UPDATE orders SET state = @state, paid_at = @paid_at, paid_ms = @paid_ms, closed_at = @closed_at,
        version = version + 1, updated_ms = @now, cursor = @cursor, transaction_ids = @transaction_ids
        WHERE combine_out_trade_no = @no AND sub_key = @key AND state IN ${OPEN_SQL} AND state != @state`),
      created: db.prepare(`UPDATE orders SET code_url = ?, creation = 'CREATED', error_code = NULL, error_message = NULL,
        version = version + 1, updated_ms = ?, watch = 1, cursor = ? WHERE combine_out_trade_no = ?`),
      failed: db.prepare(`UPDATE orders SET creation = 'FAILED', error_code = ?, error_message = ?, watch = ?,
        version = version + 1, updated_ms = ?, cursor = ? WHERE combine_out_trade_no = ?`),
      schedule: db.prepare('UPDATE orders SET next_check_ms = ?, check_attempts = check_attempts + 1 WHERE combine_out_trade_no = ?'),
      unwatch: db.prepare('UPDATE orders SET watch = 0 WHERE combine_out_trade_no = ?'),
      unwatchFinal: db.prepare(`UPDATE orders SET watch = 0 WHERE watch = 1 AND state NOT IN ${OPEN_SQL}`),
      due: db.prepare('SELECT combine_out_trade_no FROM orders WHERE watch = 1 AND next_check_ms <= ? ORDER BY next_check_ms LIMIT ?'),
      alert: db.prepare('INSERT OR IGNORE INTO alerts (kind, combine_out_trade_no, message, created_at, dedupe_key) VALUES (?, ?, ?, ?, ?)'),
      alerts: db.prepare('SELECT id, kind, combine_out_trade_no, message, created_at FROM alerts ORDER BY id DESC LIMIT ?'),
      audit: db.prepare('INSERT INTO audit_log (at, terminal, action, target, detail) VALUES (?, ?, ?, ?, ?)'),
      maxCursor: db.prepare('SELECT COALESCE(MAX(cursor), 0) AS c FROM orders'),
      since: db.prepare('SELECT * FROM orders WHERE created_ms >= ? AND cursor > ? ORDER BY cursor'),
      snapshot: db.prepare(`SELECT * FROM orders WHERE created_ms >= ? AND ((state IN ${OPEN_SQL} AND creation != 'FAILED') OR updated_ms >= ?)
        ORDER BY created_ms DESC LIMIT 1000`),
    };
    this.seq = (this.s.maxCursor.get() as { c: number }).c;
  }

  onChange(l: ChangeListener): void {
    this.listeners.push(l);
  }

  private emit(no: string, cursor: number): void {
    if (this.listeners.length === 0) return;
    // Synchronously after the commit: the row read is the state this cursor names.
    this.emitChange(lazyChange(cursor, () => this.get(no)!));
  }

  row(no: string): OrderRow | undefined {
    return this.s.get.get(no) as OrderRow | undefined;
  }

  subRows(no: string): SubOrderRow[] {
    return this.s.subs.all(no) as SubOrderRow[];
  }

  toOrder(r: OrderRow, subs: SubOrderRow[] = this.subRows(r.combine_out_trade_no)): Order {
    const ids = r.transaction_ids ? (JSON.parse(r.transaction_ids) as Record<string, string>) : null;
    return {
      combine_out_trade_no: r.combine_out_trade_no,
      state: r.state,
      total_amount: r.total_amount,
      description: r.description,
      code_url: r.code_url,
      created_at: r.created_at,
      expires_at: r.expires_at,
      paid_at: r.paid_at,
      closed_at: r.closed_at,
      terminal: r.terminal,
      sub_orders: subs.map((s): SubOrder => ({
        mchid: s.mchid,
        out_trade_no: s.out_trade_no,
        description: s.description,
        amount: s.amount,
        ...(s.attach !== null ? { attach: s.attach } : {}),
        transaction_id: ids?.[s.out_trade_no] ?? s.transaction_id,
        // All-or-nothing payment: a sub-order is always in its order's state.
        state: r.state,
      })),
      creation: r.creation,
      error_code: r.error_code,
      error_message: r.error_message,
      version: r.version,
    };
  }

  get(no: string): Order | undefined {
    const r = this.row(no);
    return r ? this.toOrder(r) : undefined;
  }

  byIdempotencyKey(terminal: string, key: string): OrderRow | undefined {
    return this.s.byKey.get(terminal, key) as OrderRow | undefined;
  }

  /** Recorded before WeChat Pay is called, so a crash or timeout never loses track of it. */
  insert(o: NewOrder): void {
    this.db.transaction(() => {
      this.s.insert.run({ ...o.row, sub_key: subKey(o.subs) });
      for (const s of o.subs) this.s.insertSub.run(s);
    })();
  }

  markCreated(no: string, codeUrl: string, now = Date.now()): void {
    const cursor = this.seq + 1;
    if (this.s.created.run(codeUrl, now, cursor, no).changes === 0) return;
    this.seq = cursor;
    this.emit(no, cursor);
  }

  /** `watch`: keep following it (an ambiguous failure: WeChat may have created it). */
  markFailed(no: string, code: string, message: string, watch: boolean, now = Date.now()): void {
    const cursor = this.seq + 1;
    if (this.s.failed.run(code, message.slice(0, 500), watch ? 1 : 0, now, cursor, no).changes === 0) return;
    this.seq = cursor;
    this.emit(no, cursor);
  }

  /**
   * Applies a transition only from a non-final state, inside the caller's transaction when
   * there is one. Returns the changed order and its change cursor, or null when nothing
   * changed. Does not emit. `subs`: the sub-order rows when the caller already read them.
   */
  transitionInTx(no: string, t: Transition, now = Date.now(), subs?: SubOrderRow[]): Change | null {
    const paidMs = t.state === 'SUCCESS' ? (t.paidMs ?? now) : null;
    const current = subs ?? this.subRows(no);
    const ids: Record<string, string> = {};
    for (const s of current) {
      const id = t.transactionIds?.get(s.out_trade_no) ?? s.transaction_id;
      if (id) ids[s.out_trade_no] = id;
    }
    const cursor = this.seq + 1;
    // RETURNING: the new row comes back with the update, no second read.
    const row = this.s.transition.get({
      no,
      state: t.state,
      paid_at: paidMs === null ? null : new Date(paidMs).toISOString(),
      paid_ms: paidMs,
      closed_at: t.state === 'CLOSED' ? new Date(now).toISOString() : null,
      now,
      cursor,
      transaction_ids: Object.keys(ids).length ? JSON.stringify(ids) : null,
    }) as OrderRow | undefined;
    if (!row) return null;
    // Cursor numbers left unused by a rolled-back transaction are harmless gaps.
    this.seq = cursor;
    return { cursor, order: this.toOrder(row, current) };
  }

  /**
   * The notification path: applies `t` only when the stored sub-orders equal `key` (see
   * subKey) and the order is non-final, in one UPDATE inside the caller's transaction. null
   * when nothing changed (already final, same state, mismatch or unknown: the caller finds
   * out which). The Change's order is read lazily, so emit it right after the commit.
   */
  applyMatchingInTx(no: string, key: string, t: Transition, now = Date.now()): Change | null {
    const paidMs = t.state === 'SUCCESS' ? (t.paidMs ?? now) : null;
    let ids: string | null = null;
    if (t.transactionIds) {
      const o: Record<string, string> = {};
      for (const [k, v] of t.transactionIds) if (v) o[k] = v;
      ids = JSON.stringify(o);
      if (ids === '{}') ids = null;
    }
    const cursor = this.seq + 1;
    const changed = this.s.matching.run({
      no, key, state: t.state,
      paid_at: paidMs === null ? null : new Date(paidMs).toISOString(),
      paid_ms: paidMs,
      closed_at: t.state === 'CLOSED' ? new Date(now).toISOString() : null,
      now, cursor, transaction_ids: ids,
    }).changes;
    if (changed === 0) return null;
    this.seq = cursor;
    return lazyChange(cursor, () => this.get(no)!);
  }

  transition(no: string, t: Transition, now = Date.now()): boolean {
    const change = this.db.transaction(() => this.transitionInTx(no, t, now)).immediate();
    if (change) this.emitChange(change);
    return change !== null;
  }

  /** After the transaction that produced it committed: tell the listeners. */
  emitChange(change: Change): void {
    for (const l of this.listeners) l(change);
  }

  schedule(no: string, atMs: number): void {
    this.s.schedule.run(atMs, no);
  }

  /** Final orders leave the reconciler's watch list, many per commit. */
  unwatchFinal(): void {
    this.s.unwatchFinal.run();
  }

  unwatch(no: string): void {
    this.s.unwatch.run(no);
  }

  due(now: number, limit: number): string[] {
    return (this.s.due.all(now, limit) as { combine_out_trade_no: string }[]).map((r) => r.combine_out_trade_no);
  }

  /** Stores an alert once per dedupe key; returns it when new. */
  addAlert(kind: string, no: string | null, message: string, dedupeKey: string | null, now = Date.now()): Alert | null {
    const created_at = new Date(now).toISOString();
    const res = this.s.alert.run(kind, no, message, created_at, dedupeKey);
    if (res.changes === 0) return null;
    return { id: Number(res.lastInsertRowid), kind, combine_out_trade_no: no, message, created_at };
  }

  alerts(limit = 200): Alert[] {
    return this.s.alerts.all(limit) as Alert[];
  }

  audit(terminal: string, action: string, target: string | null, detail: unknown): void {
    this.s.audit.run(new Date().toISOString(), terminal, action, target, detail === undefined ? null : JSON.stringify(detail));
  }

  cursor(): number {
    return this.seq;
  }

  /** Orders changed after `since` (latest state once each, with its cursor); null when `since` is not from this feed. */
  changesSince(since: number, now = Date.now()): { order: Order; cursor: number }[] | null {
    if (since > this.seq) return null;
    return (this.s.since.all(now - ORDER_HORIZON_MS, since) as OrderRow[]).map((r) => ({ order: this.toOrder(r), cursor: r.cursor }));
  }

  /** Open orders and everything that changed in the last hour. */
  snapshot(now = Date.now()): Order[] {
    return (this.s.snapshot.all(now - ORDER_HORIZON_MS, now - 3_600_000) as OrderRow[]).map((r) => this.toOrder(r));
  }

  list(f: ListFilter): Order[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.state) { where.push('o.state = ?'); args.push(f.state); }
    if (f.olderThanMinutes !== undefined) { where.push('o.created_ms <= ?'); args.push(Date.now() - f.olderThanMinutes * 60_000); }
    if (f.q) {
      const like = '%' + f.q.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
      where.push("(o.combine_out_trade_no LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM sub_orders s WHERE s.combine_out_trade_no = o.combine_out_trade_no AND s.out_trade_no LIKE ? ESCAPE '\\'))");
      args.push(like, like);
    }
    if (f.dateStartMs !== undefined) { where.push('o.created_ms >= ? AND o.created_ms < ?'); args.push(f.dateStartMs, f.dateStartMs + 86_400_000); }
    if (f.terminal) { where.push('o.terminal = ?'); args.push(f.terminal); }
    if (f.open) where.push(`o.state IN ${OPEN_SQL} AND o.creation != 'FAILED'`);
    const sql = `SELECT o.* FROM orders o ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY o.created_ms DESC LIMIT ?`;
    args.push(f.limit);
    return (this.db.prepare(sql).all(...args) as OrderRow[]).map((r) => this.toOrder(r));
  }

  /** Paid sub-orders per merchant for a Beijing day (paid time). */
  takings(dayStartMs: number): { mchid: string; amount: number; count: number }[] {
    return this.db.prepare(`SELECT s.mchid AS mchid, SUM(s.amount) AS amount, COUNT(*) AS count FROM orders o
      JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no
      WHERE o.created_ms >= ? AND o.created_ms < ? AND o.state = 'SUCCESS' AND o.paid_ms >= ? AND o.paid_ms < ? GROUP BY s.mchid`)
      .all(dayStartMs - ORDER_HORIZON_MS, dayStartMs + 86_400_000, dayStartMs, dayStartMs + 86_400_000) as {
      mchid: string; amount: number; count: number;
    }[];
  }
}

export interface ListFilter {
  state?: OrderState;
  olderThanMinutes?: number;
  q?: string;
  dateStartMs?: number;
  terminal?: string;
  open?: boolean;
  limit: number;
}
