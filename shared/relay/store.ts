/**
 * Orders in SQLite: rows ↔ contract objects, and every state change in one transaction
 * together with its change-feed row (the cursor terminals resume from).
 */
import type { Alert, Order, OrderState } from '../contracts/relay-api';
import type { Change, ChangeListener, ListFilter, NewOrder, OrderRow, SnapshotBounds, SubOrderRow, Transition } from './repo-types';

export type { Change, ChangeListener, ListFilter, NewOrder, OrderRow, SnapshotBounds, SubOrderRow, Transition };
import type { Statement } from 'better-sqlite3';
import type { Db } from './db';
import { buildOrder, subKey } from './order-view';

export { subKey };

const OPEN_STATES: readonly OrderState[] = ['NOTPAY', 'USERPAYING'];
const OPEN_SQL = "('NOTPAY','USERPAYING')";
/** Longest replay on `/v1/events?since=`: beyond it the terminal gets a fresh snapshot. */
export const REPLAY_MAX = 500;
/** Number search: matches considered per kind of number (order, sub-order, transaction). */
const NUMBER_HITS = 1000;

/** What an Order is built from (request_json and scheduling columns stay in the database). */
const ORDER_COLUMNS = `combine_out_trade_no, kind, state, total_amount, description, code_url, created_at, expires_at, paid_at, closed_at,
  terminal, creation, error_code, error_message, version, cursor, transaction_ids, updated_ms`;

const SUB_COLUMNS = 'out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach';

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
      subs: db.prepare(`SELECT ${SUB_COLUMNS} FROM sub_orders WHERE combine_out_trade_no = ? ORDER BY idx`),
      // Many orders' sub-orders in one statement (a list of 200 orders: one read, not 200).
      subsOf: db.prepare(`SELECT ${SUB_COLUMNS} FROM sub_orders WHERE combine_out_trade_no IN (SELECT value FROM json_each(?)) ORDER BY combine_out_trade_no, idx`),
      byKey: db.prepare('SELECT * FROM orders WHERE terminal = ? AND idempotency_key = ?'),
      insert: db.prepare(`INSERT INTO orders (combine_out_trade_no, kind, state, total_amount, description, created_at, created_ms, expires_at, expires_ms,
        updated_ms, terminal, creation, idempotency_key, request_hash, request_json, watch, next_check_ms, sub_key)
        VALUES (@combine_out_trade_no, @kind, @state, @total_amount, @description, @created_at, @created_ms, @expires_at, @expires_ms,
        @updated_ms, @terminal, @creation, @idempotency_key, @request_hash, @request_json, @watch, @next_check_ms, @sub_key)`),
      // A basic Native notification names the sub-order (its out_trade_no), not the relay's order.
      subByNo: db.prepare(`SELECT ${SUB_COLUMNS} FROM sub_orders WHERE out_trade_no = ?`),
      insertSub: db.prepare(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach, state)
        VALUES (@out_trade_no, @combine_out_trade_no, @idx, @mchid, @description, @amount, @attach, 'NOTPAY')`),
      // The one state change: only from a non-final state; with @key (the notification path)
      // only when the stored sub-orders equal it, checked in the WHERE clause without a prior
      // read. New transaction ids are merged over the known ones, never replacing them.
      change: db.prepare(`UPDATE orders SET state = @state, paid_at = @paid_at, paid_ms = @paid_ms, closed_at = @closed_at,
        version = version + 1, updated_ms = @now, cursor = @cursor,
        paid_via = CASE WHEN @state = 'SUCCESS' THEN @via ELSE paid_via END,
        transaction_ids = CASE WHEN @ids IS NULL THEN transaction_ids ELSE json_patch(COALESCE(transaction_ids, '{}'), @ids) END
        WHERE combine_out_trade_no = @no AND (@key IS NULL OR sub_key = @key) AND state IN ${OPEN_SQL} AND state != @state`),
      txid: db.prepare('INSERT OR IGNORE INTO order_transactions (transaction_id, combine_out_trade_no) VALUES (?, ?)'),
      // The create body is kept only while a re-send may be needed (a smaller row for history).
      created: db.prepare(`UPDATE orders SET code_url = ?, creation = 'CREATED', error_code = NULL, error_message = NULL, request_json = '',
        version = version + 1, updated_ms = ?, watch = 1, cursor = ? WHERE combine_out_trade_no = ?`),
      failed: db.prepare(`UPDATE orders SET creation = 'FAILED', error_code = ?, error_message = ?, watch = ?,
        version = version + 1, updated_ms = ?, cursor = ? WHERE combine_out_trade_no = ?`),
      schedule: db.prepare('UPDATE orders SET next_check_ms = ?, check_attempts = check_attempts + 1 WHERE combine_out_trade_no = ?'),
      unwatch: db.prepare('UPDATE orders SET watch = 0 WHERE combine_out_trade_no = ?'),
      lease: db.prepare('UPDATE orders SET next_check_ms = ? WHERE combine_out_trade_no = ?'),
      unwatchFinal: db.prepare(`UPDATE orders SET watch = 0 WHERE watch = 1 AND state NOT IN ${OPEN_SQL}`),
      due: db.prepare('SELECT combine_out_trade_no FROM orders WHERE watch = 1 AND next_check_ms <= ? ORDER BY next_check_ms LIMIT ?'),
      alert: db.prepare('INSERT OR IGNORE INTO alerts (kind, combine_out_trade_no, message, created_at, dedupe_key) VALUES (?, ?, ?, ?, ?)'),
      alerts: db.prepare('SELECT id, kind, combine_out_trade_no, message, created_at FROM alerts ORDER BY id DESC LIMIT ?'),
      audit: db.prepare('INSERT INTO audit_log (at, terminal, action, target, detail) VALUES (?, ?, ?, ?, ?)'),
      // Index orders_cursor: a seek, not a scan of every row.
      maxCursor: db.prepare('SELECT COALESCE(MAX(cursor), 0) AS c FROM orders'),
      since: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE cursor > ? ORDER BY cursor LIMIT ?`),
      // Index-only: is there a (max+1)-th change after the cursor? (a replay too long to send)
      tooMany: db.prepare('SELECT 1 FROM orders WHERE cursor > ? ORDER BY cursor LIMIT 1 OFFSET ?'),
      open: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders INDEXED BY orders_open WHERE state IN ${OPEN_SQL} AND creation != 'FAILED' ORDER BY created_ms DESC LIMIT ?`),
      openOf: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders INDEXED BY orders_open WHERE state IN ${OPEN_SQL} AND creation != 'FAILED' AND terminal = ? ORDER BY created_ms DESC LIMIT ?`),
      recent: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE cursor > 0 ORDER BY cursor DESC LIMIT ?`),
      recentOf: db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders INDEXED BY orders_terminal WHERE terminal = ? ORDER BY created_ms DESC LIMIT ?`),
    };
    this.seq = (this.s.maxCursor.get() as { c: number }).c;
  }

  onChange(l: ChangeListener): void {
    this.listeners.push(l);
  }

  private emit(no: string, cursor: number): Change {
    // Synchronously after the commit: the row read (once, by whoever asks first) is the state
    // this cursor names.
    const change = lazyChange(cursor, () => this.get(no)!);
    this.emitChange(change);
    return change;
  }

  row(no: string): OrderRow | undefined {
    return this.s.get.get(no) as OrderRow | undefined;
  }

  subRows(no: string): SubOrderRow[] {
    return this.s.subs.all(no) as SubOrderRow[];
  }

  toOrder(r: OrderRow, subs: SubOrderRow[] = this.subRows(r.combine_out_trade_no)): Order {
    const order = buildOrder(r, subs);
    for (const d of this.decorators) d(order);
    return order;
  }

  /** What else an order object carries (sqlite/refunds.ts: `refunds`, `refunded_amount`). */
  private readonly decorators: ((order: Order) => void)[] = [];
  decorate(fn: (order: Order) => void): void {
    this.decorators.push(fn);
  }

  /**
   * Something the order object carries changed (a refund): new version and feed cursor, inside
   * the caller's transaction; null for an unknown order. Emit the Change after the commit.
   */
  touchInTx(no: string, now = Date.now()): Change | null {
    const cursor = this.seq + 1;
    const st = this.cachedStatement('UPDATE orders SET version = version + 1, updated_ms = ?, cursor = ? WHERE combine_out_trade_no = ?');
    if (st.run(now, cursor, no).changes === 0) return null;
    this.seq = cursor;
    return lazyChange(cursor, () => this.get(no)!);
  }

  /** Orders for many rows, their sub-orders read in one statement. */
  toOrders(rows: OrderRow[]): Order[] {
    if (rows.length < 2) return rows.map((r) => this.toOrder(r));
    const by = new Map<string, SubOrderRow[]>();
    for (const sub of this.s.subsOf.all(JSON.stringify(rows.map((r) => r.combine_out_trade_no))) as SubOrderRow[]) {
      const list = by.get(sub.combine_out_trade_no);
      if (list) list.push(sub);
      else by.set(sub.combine_out_trade_no, [sub]);
    }
    return rows.map((r) => this.toOrder(r, by.get(r.combine_out_trade_no) ?? []));
  }

  get(no: string): Order | undefined {
    const r = this.row(no);
    return r ? this.toOrder(r) : undefined;
  }

  /** The sub-order with this number (a basic Native order's out_trade_no), if it is ours. */
  subByNo(outTradeNo: string): SubOrderRow | undefined {
    return this.s.subByNo.get(outTradeNo) as SubOrderRow | undefined;
  }

  byIdempotencyKey(terminal: string, key: string): OrderRow | undefined {
    return this.s.byKey.get(terminal, key) as OrderRow | undefined;
  }

  /** Recorded before WeChat Pay is called, so a crash or timeout never loses track of it. */
  insert(o: NewOrder): void {
    this.db.transaction(() => {
      this.s.insert.run({ ...o.row, kind: o.row.kind ?? 'combine', sub_key: subKey(o.subs) });
      for (const s of o.subs) this.s.insertSub.run(s);
    })();
  }

  /** The Change (null: unknown order), its order read at most once for listeners and caller. */
  markCreated(no: string, codeUrl: string, now = Date.now()): Change | null {
    const cursor = this.seq + 1;
    if (this.s.created.run(codeUrl, now, cursor, no).changes === 0) return null;
    this.seq = cursor;
    return this.emit(no, cursor);
  }

  /** `watch`: keep following it (an ambiguous failure: WeChat may have created it). */
  markFailed(no: string, code: string, message: string, watch: boolean, now = Date.now()): Change | null {
    const cursor = this.seq + 1;
    if (this.s.failed.run(code, message.slice(0, 500), watch ? 1 : 0, now, cursor, no).changes === 0) return null;
    this.seq = cursor;
    return this.emit(no, cursor);
  }

  /**
   * The one state-change path: applies `t` only from a non-final state and, with `key` (see
   * subKey), only when the stored sub-orders equal it; inside the caller's transaction. null
   * when nothing changed (already final, same state, mismatch or unknown: the caller finds out
   * which). Does not emit; the Change's order is read lazily, so emit it right after the commit.
   */
  private apply(no: string, t: Transition, now: number, key: string | null): Change | null {
    const paidMs = t.state === 'SUCCESS' ? (t.paidMs ?? now) : null;
    const ids: [string, string][] = [];
    for (const [k, v] of t.transactionIds ?? []) if (v) ids.push([k, v]);
    const cursor = this.seq + 1;
    const changed = this.s.change.run({
      no, key, state: t.state,
      paid_at: paidMs === null ? null : new Date(paidMs).toISOString(),
      paid_ms: paidMs,
      closed_at: t.state === 'CLOSED' ? new Date(now).toISOString() : null,
      now, cursor, ids: ids.length ? JSON.stringify(Object.fromEntries(ids)) : null,
      // How the payment became known (order timeline): only the notification path passes a key.
      via: key !== null ? 'notification' : 'query',
    }).changes;
    if (changed === 0) return null;
    // Transaction ids findable by number search (exact or prefix, indexed).
    for (const [, id] of ids) this.s.txid.run(id, no);
    // Cursor numbers left unused by a rolled-back transaction are harmless gaps.
    this.seq = cursor;
    return lazyChange(cursor, () => this.get(no)!);
  }

  /** The notification path: `apply` with the sub-order check (see there). */
  applyMatchingInTx(no: string, key: string, t: Transition, now = Date.now()): Change | null {
    return this.apply(no, t, now, key);
  }

  /** The query/close path: `apply` in its own transaction, then tell the listeners. */
  transition(no: string, t: Transition, now = Date.now()): boolean {
    const change = this.db.transaction(() => this.apply(no, t, now, null)).immediate();
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

  /** Due orders leased to the caller: next_check_ms moved to now + leaseMs (see OrdersRepo.claimDue). */
  claimDue(now: number, limit: number, leaseMs: number): string[] {
    return this.db.transaction(() => {
      const nos = this.due(now, limit);
      for (const no of nos) this.s.lease.run(now + leaseMs, no);
      return nos;
    }).immediate();
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

  /**
   * Orders changed after `since` (latest state once each, with its cursor), oldest change
   * first, at most `max`. null when `since` is not from this feed or more than `max` orders
   * changed since: the terminal must start again from a snapshot.
   */
  changesSince(since: number, max = REPLAY_MAX): { order: Order; cursor: number }[] | null {
    const rows = this.changedRowsSince(since, max);
    if (!rows) return null;
    const orders = this.toOrders(rows);
    return rows.map((r, i) => ({ order: orders[i]!, cursor: r.cursor }));
  }

  /** changesSince's rows (one index range on orders_cursor), for callers that build Orders in slices. */
  changedRowsSince(since: number, max = REPLAY_MAX): OrderRow[] | null {
    if (since > this.seq) return null;
    if (this.s.tooMany.get(since, max) !== undefined) return null;
    const rows = this.s.since.all(since, max + 1) as OrderRow[];
    return rows.length > max ? null : rows;
  }

  /**
   * What a terminal starts from: the open orders (newest `maxOpen`) and the `recent` orders
   * changed last within the past hour, newest first; of one terminal when `terminal` is given
   * (then "recent" means its newest orders). Two index reads, bounded whatever the history
   * (orders_open, orders_cursor / orders_terminal). Rows: the caller builds Orders in slices.
   */
  snapshotRows(o: SnapshotBounds, now = Date.now()): OrderRow[] {
    const rows = new Map<string, OrderRow>();
    const open = o.terminal === undefined ? this.s.open.all(o.maxOpen) : this.s.openOf.all(o.terminal, o.maxOpen);
    for (const r of open as OrderRow[]) rows.set(r.combine_out_trade_no, r);
    const recent = o.terminal === undefined ? this.s.recent.all(o.recent) : this.s.recentOf.all(o.terminal, o.recent);
    for (const r of recent as OrderRow[]) if (r.updated_ms >= now - 3_600_000) rows.set(r.combine_out_trade_no, r);
    return [...rows.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  }

  list(f: ListFilter): Order[] {
    const where: string[] = [];
    const args: unknown[] = [];
    // An open state reads the small partial index orders_open, named so the planner never
    // walks a terminal's (or the whole) history instead.
    const openOnly = f.open || (f.state !== undefined && OPEN_STATES.includes(f.state));
    if (openOnly) where.push(`o.state IN ${OPEN_SQL}`);
    if (f.open) where.push("o.creation != 'FAILED'");
    if (f.state) { where.push('o.state = ?'); args.push(f.state); }
    if (f.olderThanMinutes !== undefined) { where.push('o.created_ms <= ?'); args.push(Date.now() - f.olderThanMinutes * 60_000); }
    if (f.q !== undefined) {
      // Number search: the beginning of (or a whole) order, sub-order or transaction number,
      // each an index range; the newest NUMBER_HITS matches of each kind are considered.
      if (!/^[0-9A-Za-z_-]{1,64}$/.test(f.q)) return [];
      const end = f.q + '\u{10FFFF}';
      where.push(`o.combine_out_trade_no IN (
        SELECT * FROM (SELECT combine_out_trade_no FROM orders WHERE combine_out_trade_no >= ? AND combine_out_trade_no < ? ORDER BY combine_out_trade_no DESC LIMIT ${NUMBER_HITS})
        UNION SELECT * FROM (SELECT combine_out_trade_no FROM sub_orders WHERE out_trade_no >= ? AND out_trade_no < ? ORDER BY out_trade_no DESC LIMIT ${NUMBER_HITS})
        UNION SELECT * FROM (SELECT combine_out_trade_no FROM order_transactions WHERE transaction_id >= ? AND transaction_id < ? ORDER BY transaction_id DESC LIMIT ${NUMBER_HITS}))`);
      args.push(f.q, end, f.q, end, f.q, end);
    }
    if (f.dateStartMs !== undefined) { where.push('o.created_ms >= ? AND o.created_ms < ?'); args.push(f.dateStartMs, f.dateStartMs + 86_400_000); }
    if (f.terminal) { where.push('o.terminal = ?'); args.push(f.terminal); }
    const sql = `SELECT ${ORDER_COLUMNS.replace(/(^|,\s*)(\w+)/g, '$1o.$2')} FROM orders o${openOnly ? ' INDEXED BY orders_open' : ''} ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY o.created_ms DESC LIMIT ?`;
    args.push(f.limit);
    return this.toOrders(this.cachedStatement(sql).all(...args) as OrderRow[]);
  }

  private readonly statements = new Map<string, Statement<unknown[]>>();
  /** List queries come in a few shapes: each is prepared once. */
  private cachedStatement(sql: string): Statement<unknown[]> {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** Paid sub-orders per merchant for a Beijing day (paid time). */
  takings(dayStartMs: number): { mchid: string; amount: number; count: number }[] {
    return this.cachedStatement(`SELECT s.mchid AS mchid, SUM(s.amount) AS amount, COUNT(*) AS count FROM orders o INDEXED BY orders_paid_success
      JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no
      WHERE o.state = 'SUCCESS' AND o.paid_ms >= ? AND o.paid_ms < ? GROUP BY s.mchid`)
      .all(dayStartMs, dayStartMs + 86_400_000) as {
      mchid: string; amount: number; count: number;
    }[];
  }
}

