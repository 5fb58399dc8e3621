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
}

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
  row: Omit<OrderRow, 'version' | 'check_attempts' | 'paid_at' | 'paid_ms' | 'closed_at' | 'code_url' | 'error_code' | 'error_message'>;
  subs: Omit<SubOrderRow, 'transaction_id' | 'state'>[];
}

/** A transition computed from WeChat's view of the order. */
export interface Transition {
  state: OrderState;
  paidMs?: number | null;
  /** per out_trade_no */
  transactionIds?: Map<string, string | null>;
}

export type ChangeListener = (order: Order, cursor: number) => void;

export interface Change {
  cursor: number;
  order: Order;
}

export class OrderStore {
  private readonly s;
  private listeners: ChangeListener[] = [];

  constructor(readonly db: Db) {
    this.s = {
      get: db.prepare('SELECT * FROM orders WHERE combine_out_trade_no = ?'),
      subs: db.prepare('SELECT * FROM sub_orders WHERE combine_out_trade_no = ? ORDER BY idx'),
      byKey: db.prepare('SELECT * FROM orders WHERE terminal = ? AND idempotency_key = ?'),
      insert: db.prepare(`INSERT INTO orders (combine_out_trade_no, state, total_amount, description, created_at, created_ms, expires_at, expires_ms,
        updated_ms, terminal, creation, idempotency_key, request_hash, request_json, watch, next_check_ms)
        VALUES (@combine_out_trade_no, @state, @total_amount, @description, @created_at, @created_ms, @expires_at, @expires_ms,
        @updated_ms, @terminal, @creation, @idempotency_key, @request_hash, @request_json, @watch, @next_check_ms)`),
      insertSub: db.prepare(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach, state)
        VALUES (@out_trade_no, @combine_out_trade_no, @idx, @mchid, @description, @amount, @attach, 'NOTPAY')`),
      event: db.prepare('INSERT INTO events (combine_out_trade_no, at_ms) VALUES (?, ?)'),
      transition: db.prepare(`UPDATE orders SET state = @state, paid_at = @paid_at, paid_ms = @paid_ms, closed_at = @closed_at,
        watch = @watch, version = version + 1, updated_ms = @now
        WHERE combine_out_trade_no = @no AND state IN ${OPEN_SQL} AND state != @state RETURNING *`),
      subState: db.prepare('UPDATE sub_orders SET state = ?, transaction_id = COALESCE(?, transaction_id) WHERE out_trade_no = ? AND combine_out_trade_no = ?'),
      created: db.prepare(`UPDATE orders SET code_url = ?, creation = 'CREATED', error_code = NULL, error_message = NULL,
        version = version + 1, updated_ms = ?, watch = 1 WHERE combine_out_trade_no = ?`),
      failed: db.prepare(`UPDATE orders SET creation = 'FAILED', error_code = ?, error_message = ?, watch = ?,
        version = version + 1, updated_ms = ? WHERE combine_out_trade_no = ?`),
      schedule: db.prepare('UPDATE orders SET next_check_ms = ?, check_attempts = check_attempts + 1 WHERE combine_out_trade_no = ?'),
      unwatch: db.prepare('UPDATE orders SET watch = 0 WHERE combine_out_trade_no = ?'),
      due: db.prepare('SELECT combine_out_trade_no FROM orders WHERE watch = 1 AND next_check_ms <= ? ORDER BY next_check_ms LIMIT ?'),
      alert: db.prepare('INSERT OR IGNORE INTO alerts (kind, combine_out_trade_no, message, created_at, dedupe_key) VALUES (?, ?, ?, ?, ?)'),
      alerts: db.prepare('SELECT id, kind, combine_out_trade_no, message, created_at FROM alerts ORDER BY id DESC LIMIT ?'),
      audit: db.prepare('INSERT INTO audit_log (at, terminal, action, target, detail) VALUES (?, ?, ?, ?, ?)'),
      maxCursor: db.prepare("SELECT COALESCE(MAX(cursor), 0) AS c FROM events"),
      minCursor: db.prepare("SELECT COALESCE(MIN(cursor), 0) AS c FROM events"),
      since: db.prepare('SELECT combine_out_trade_no AS no, MAX(cursor) AS c FROM events WHERE cursor > ? GROUP BY combine_out_trade_no ORDER BY c'),
      snapshot: db.prepare(`SELECT * FROM orders WHERE created_ms >= ? AND ((state IN ${OPEN_SQL} AND creation != 'FAILED') OR updated_ms >= ?)
        ORDER BY created_ms DESC LIMIT 1000`),
      prune: db.prepare('DELETE FROM events WHERE at_ms < ? AND cursor < (SELECT MAX(cursor) FROM events)'),
    };
  }

  onChange(l: ChangeListener): void {
    this.listeners.push(l);
  }

  private emit(no: string, cursor: number): void {
    if (this.listeners.length === 0) return;
    const order = this.get(no);
    if (!order) return;
    for (const l of this.listeners) l(order, cursor);
  }

  row(no: string): OrderRow | undefined {
    return this.s.get.get(no) as OrderRow | undefined;
  }

  subRows(no: string): SubOrderRow[] {
    return this.s.subs.all(no) as SubOrderRow[];
  }

  toOrder(r: OrderRow, subs: SubOrderRow[] = this.subRows(r.combine_out_trade_no)): Order {
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
        transaction_id: s.transaction_id,
        state: s.state,
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
      this.s.insert.run(o.row);
      for (const s of o.subs) this.s.insertSub.run(s);
    })();
  }

  markCreated(no: string, codeUrl: string, now = Date.now()): void {
    const cursor = this.db.transaction(() => {
      this.s.created.run(codeUrl, now, no);
      return Number(this.s.event.run(no, now).lastInsertRowid);
    })();
    this.emit(no, cursor);
  }

  /** `watch`: keep following it (an ambiguous failure: WeChat may have created it). */
  markFailed(no: string, code: string, message: string, watch: boolean, now = Date.now()): void {
    const cursor = this.db.transaction(() => {
      this.s.failed.run(code, message.slice(0, 500), watch ? 1 : 0, now, no);
      return Number(this.s.event.run(no, now).lastInsertRowid);
    })();
    this.emit(no, cursor);
  }

  /**
   * Applies a transition only from a non-final state, inside the caller's transaction when
   * there is one. Returns the changed order and its change cursor, or null when nothing
   * changed. Does not emit. `subs`: the sub-order rows when the caller already read them.
   */
  transitionInTx(no: string, t: Transition, now = Date.now(), subs?: SubOrderRow[]): Change | null {
    const final = t.state === 'SUCCESS' || t.state === 'CLOSED' || t.state === 'PAYERROR';
    const paidMs = t.state === 'SUCCESS' ? (t.paidMs ?? now) : null;
    // RETURNING: the new row comes back with the update, no second read.
    const row = this.s.transition.get({
      no,
      state: t.state,
      paid_at: paidMs === null ? null : new Date(paidMs).toISOString(),
      paid_ms: paidMs,
      closed_at: t.state === 'CLOSED' ? new Date(now).toISOString() : null,
      watch: final ? 0 : 1,
      now,
    }) as OrderRow | undefined;
    if (!row) return null;
    const updated = (subs ?? this.subRows(no)).map((s) => ({ ...s, state: t.state, transaction_id: t.transactionIds?.get(s.out_trade_no) ?? s.transaction_id }));
    for (const s of updated) this.s.subState.run(t.state, s.transaction_id, s.out_trade_no, no);
    const cursor = Number(this.s.event.run(no, now).lastInsertRowid);
    return { cursor, order: this.toOrder(row, updated) };
  }

  transition(no: string, t: Transition, now = Date.now()): boolean {
    const change = this.db.transaction(() => this.transitionInTx(no, t, now)).immediate();
    if (change) this.emitChange(change);
    return change !== null;
  }

  /** After the transaction that produced it committed: tell the listeners. */
  emitChange(change: Change): void {
    for (const l of this.listeners) l(change.order, change.cursor);
  }

  schedule(no: string, atMs: number): void {
    this.s.schedule.run(atMs, no);
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
    return (this.s.maxCursor.get() as { c: number }).c;
  }

  /** Orders changed after `since`, latest state once each with its last cursor; null when the feed no longer reaches back that far. */
  changesSince(since: number): { order: Order; cursor: number }[] | null {
    const max = this.cursor();
    const min = (this.s.minCursor.get() as { c: number }).c;
    if (since > max || (min > 0 && since < min - 1)) return null;
    const out: { order: Order; cursor: number }[] = [];
    for (const r of this.s.since.all(since) as { no: string; c: number }[]) {
      const order = this.get(r.no);
      if (order) out.push({ order, cursor: r.c });
    }
    return out;
  }

  /** Open orders and everything that changed in the last hour. */
  snapshot(now = Date.now()): Order[] {
    return (this.s.snapshot.all(now - ORDER_HORIZON_MS, now - 3_600_000) as OrderRow[]).map((r) => this.toOrder(r));
  }

  pruneEvents(olderThanMs: number): void {
    this.s.prune.run(olderThanMs);
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
