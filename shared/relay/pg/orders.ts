/**
 * Orders on PostgreSQL: the same semantics as the SQLite OrderStore (../store.ts), with the cursor
 * of every change drawn under the feed lock (core.ts) instead of from process memory.
 */
import type { Order, OrderState } from '../../contracts/relay-api';
import type { ListFilter, NewOrder, OrderRow, OrdersRepo, SubOrderRow, Transition } from '../repo-types';
import type { RefundRow } from '../repo-refunds';
import { buildOrder, subKey } from '../order-view';
import { decorateRefunds } from '../refund-view';
import type { Client, Pool, PoolClient } from 'pg';
import type { PgCore, Tx } from './core';

const OPEN_STATES: readonly OrderState[] = ['NOTPAY', 'USERPAYING'];
const OPEN_SQL = "('NOTPAY','USERPAYING')";
/** Number search: matches considered per kind of number (order, sub-order, transaction), as store.ts. */
const NUMBER_HITS = 1000;

/** What an Order is built from (request_json and scheduling columns stay in the database). */
export const ORDER_COLUMNS = `combine_out_trade_no, kind, state, total_amount, description, code_url, created_at, expires_at, paid_at, closed_at,
  terminal, creation, error_code, error_message, version, cursor, transaction_ids, updated_ms`;
const SUB_COLUMNS = 'out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach';
/** Named statements shared with notifications.ts (one name, one text). */
export const SQL_ROW = 'SELECT * FROM orders WHERE combine_out_trade_no = $1';
export const SQL_SUBS = `SELECT ${SUB_COLUMNS} FROM sub_orders WHERE combine_out_trade_no = $1 ORDER BY idx`;

/** BIGINT columns (node-postgres hands them over as strings). */
const ORDER_BIGINTS = ['created_ms', 'expires_ms', 'paid_ms', 'updated_ms', 'next_check_ms', 'cursor'] as const;
const REFUND_BIGINTS = ['created_ms', 'next_check_ms'] as const;

/** Runs one statement; `name` makes it a named prepared statement (per connection, prepared once). */
export type Exec = <R>(text: string, values: unknown[], name?: string) => Promise<R[]>;

export const execOf = (c: Pool | PoolClient | Client): Exec =>
  async <R,>(text: string, values: unknown[], name?: string) => (await c.query(name ? { name, text, values } : { text, values })).rows as R[];

function numbers<T>(row: T, fields: readonly string[]): T {
  const r = row as Record<string, unknown>;
  for (const f of fields) if (typeof r[f] === 'string') r[f] = Number(r[f]);
  return row;
}

export const toOrderRow = (r: unknown): OrderRow => numbers(r as OrderRow, ORDER_BIGINTS);

/**
 * Orders of rows with two more statements at most: every sub-order of them (= ANY), and the
 * refunds of the paid ones (refund-view.ts builds what they show).
 */
export async function buildOrders(exec: Exec, rows: readonly OrderRow[]): Promise<Order[]> {
  if (rows.length === 0) return [];
  const nos = rows.map((r) => r.combine_out_trade_no);
  const subs = await exec<SubOrderRow>(`SELECT ${SUB_COLUMNS} FROM sub_orders WHERE combine_out_trade_no = ANY($1) ORDER BY combine_out_trade_no, idx`, [nos], 'orders_subs_of');
  const paid = rows.filter((r) => r.state === 'SUCCESS').map((r) => r.combine_out_trade_no);
  const refunds = paid.length === 0 ? [] : await exec<RefundRow>(
    "SELECT * FROM refunds WHERE combine_out_trade_no = ANY($1) AND status != 'FAILED' ORDER BY created_ms, out_refund_no", [paid], 'orders_refunds_of');
  const subsBy = group(subs);
  const refundsBy = group(refunds.map((r) => numbers(r, REFUND_BIGINTS)));
  return rows.map((r) => {
    const order = buildOrder(r, subsBy.get(r.combine_out_trade_no) ?? []);
    decorateRefunds(order, r.state === 'SUCCESS' ? refundsBy.get(r.combine_out_trade_no) ?? [] : []);
    return order;
  });
}

function group<T extends { combine_out_trade_no: string }>(rows: readonly T[]): Map<string, T[]> {
  const by = new Map<string, T[]>();
  for (const x of rows) {
    const list = by.get(x.combine_out_trade_no);
    if (list) list.push(x);
    else by.set(x.combine_out_trade_no, [x]);
  }
  return by;
}

/**
 * The one state change (store.ts `change`): only from a non-final state to another one; with `key`
 * (the notification path) only when the stored sub-orders equal it. New transaction ids are merged
 * over the known ones. Inside a feed transaction; true when it changed.
 */
export async function applyTransition(t: Tx, no: string, tr: Transition, now: number, key: string | null): Promise<boolean> {
  const exec = execOf(t.c);
  const paidMs = tr.state === 'SUCCESS' ? (tr.paidMs ?? now) : null;
  const ids: [string, string][] = [];
  for (const [k, v] of tr.transactionIds ?? []) if (v) ids.push([k, v]);
  const cursor = await t.nextCursor();
  const changed = await exec(`UPDATE orders SET state = $2, paid_at = $3, paid_ms = $4, closed_at = $5,
      version = version + 1, updated_ms = $6, cursor = $7,
      paid_via = CASE WHEN $2 = 'SUCCESS' THEN $8 ELSE paid_via END,
      transaction_ids = CASE WHEN $9::text IS NULL THEN transaction_ids ELSE (COALESCE(transaction_ids, '{}')::jsonb || $9::jsonb)::text END
    WHERE combine_out_trade_no = $1 AND ($10::text IS NULL OR sub_key = $10) AND state IN ${OPEN_SQL} AND state != $2
    RETURNING 1`, [
    no, tr.state,
    paidMs === null ? null : new Date(paidMs).toISOString(), paidMs,
    tr.state === 'CLOSED' ? new Date(now).toISOString() : null,
    now, cursor,
    // How the payment became known (order timeline): only the notification path passes a key.
    key !== null ? 'notification' : 'query',
    ids.length ? JSON.stringify(Object.fromEntries(ids)) : null,
    key,
  ], 'orders_change');
  if (changed.length === 0) return false;
  // Transaction ids findable by number search (exact or prefix, indexed).
  if (ids.length) {
    await exec('INSERT INTO order_transactions (transaction_id, combine_out_trade_no) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING',
      [ids.map(([, id]) => id), no], 'orders_txids');
  }
  return true;
}

export class PgOrders implements OrdersRepo {
  private readonly exec: Exec;

  constructor(private readonly core: PgCore) {
    this.exec = execOf(core.pool);
  }

  async row(no: string): Promise<OrderRow | undefined> {
    const [r] = await this.exec(SQL_ROW, [no], 'orders_row');
    return r ? toOrderRow(r) : undefined;
  }

  async subRows(no: string): Promise<SubOrderRow[]> {
    return this.exec<SubOrderRow>(SQL_SUBS, [no], 'orders_subs');
  }

  async subByNo(outTradeNo: string): Promise<SubOrderRow | undefined> {
    const [r] = await this.exec<SubOrderRow>(`SELECT ${SUB_COLUMNS} FROM sub_orders WHERE out_trade_no = $1`, [outTradeNo], 'orders_sub_by_no');
    return r;
  }

  async get(no: string): Promise<Order | undefined> {
    const r = await this.row(no);
    return r ? (await this.toOrders([r]))[0] : undefined;
  }

  toOrders(rows: OrderRow[]): Promise<Order[]> {
    return buildOrders(this.exec, rows);
  }

  async byIdempotencyKey(terminal: string, key: string): Promise<OrderRow | undefined> {
    const [r] = await this.exec('SELECT * FROM orders WHERE terminal = $1 AND idempotency_key = $2', [terminal, key]);
    return r ? toOrderRow(r) : undefined;
  }

  insert(o: NewOrder): Promise<boolean> {
    const r = o.row;
    return this.core.tx(async (t) => {
      const inserted = await t.q(`INSERT INTO orders (combine_out_trade_no, kind, state, total_amount, description, created_at, created_ms, expires_at, expires_ms,
          updated_ms, terminal, creation, idempotency_key, request_hash, request_json, watch, next_check_ms, sub_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
        ON CONFLICT (terminal, idempotency_key) DO NOTHING RETURNING 1`, [
        r.combine_out_trade_no, r.kind ?? 'combine', r.state, r.total_amount, r.description, r.created_at, r.created_ms, r.expires_at, r.expires_ms,
        r.updated_ms, r.terminal, r.creation, r.idempotency_key, r.request_hash, r.request_json, r.watch, r.next_check_ms, subKey(o.subs),
      ]);
      if (inserted.length === 0) return false;
      if (o.subs.length) {
        const values: unknown[] = [];
        const tuples = o.subs.map((s) => {
          const at = values.length;
          values.push(s.out_trade_no, s.combine_out_trade_no, s.idx, s.mchid, s.description, s.amount, s.attach);
          return `($${at + 1}, $${at + 2}, $${at + 3}, $${at + 4}, $${at + 5}, $${at + 6}, $${at + 7}, 'NOTPAY')`;
        });
        await t.q(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach, state) VALUES ${tuples.join(', ')}`, values);
      }
      return true;
    });
  }

  /** One feed transaction: UPDATE … RETURNING the row, the Order built inside it (as of that change). */
  private mark(sql: string, params: (cursor: number) => unknown[]): Promise<Order | null> {
    return this.core.tx(async (t) => {
      const cursor = await t.nextCursor();
      const [r] = await t.q(sql, params(cursor));
      if (!r) return null;
      return (await buildOrders(execOf(t.c), [toOrderRow(r)]))[0]!;
    }, { feed: true });
  }

  markCreated(no: string, codeUrl: string, now = Date.now()): Promise<Order | null> {
    // The create body is kept only while a re-send may be needed (a smaller row for history).
    return this.mark(`UPDATE orders SET code_url = $1, creation = 'CREATED', error_code = NULL, error_message = NULL, request_json = '',
        version = version + 1, updated_ms = $2, watch = 1, cursor = $3 WHERE combine_out_trade_no = $4 RETURNING ${ORDER_COLUMNS}`,
    (cursor) => [codeUrl, now, cursor, no]);
  }

  markFailed(no: string, code: string, message: string, watch: boolean, now = Date.now()): Promise<Order | null> {
    return this.mark(`UPDATE orders SET creation = 'FAILED', error_code = $1, error_message = $2, watch = $3,
        version = version + 1, updated_ms = $4, cursor = $5 WHERE combine_out_trade_no = $6 RETURNING ${ORDER_COLUMNS}`,
    (cursor) => [code, message.slice(0, 500), watch ? 1 : 0, now, cursor, no]);
  }

  transition(no: string, tr: Transition, now = Date.now()): Promise<boolean> {
    return this.core.tx((t) => applyTransition(t, no, tr, now, null), { feed: true });
  }

  async schedule(no: string, atMs: number): Promise<void> {
    await this.exec('UPDATE orders SET next_check_ms = $1, check_attempts = check_attempts + 1 WHERE combine_out_trade_no = $2', [atMs, no], 'orders_schedule');
  }

  async unwatch(no: string): Promise<void> {
    await this.exec('UPDATE orders SET watch = 0 WHERE combine_out_trade_no = $1', [no]);
  }

  async unwatchFinal(): Promise<void> {
    await this.exec(`UPDATE orders SET watch = 0 WHERE watch = 1 AND state NOT IN ${OPEN_SQL}`, []);
  }

  /**
   * One statement: lock the due rows nobody else holds (SKIP LOCKED), move them out of "due" by the
   * lease, hand them back oldest due first. A claimer blocked on none of them; a row another
   * claimer just leased is re-checked after its commit and no longer due.
   */
  async claimDue(now: number, limit: number, leaseMs: number): Promise<string[]> {
    const rows = await this.exec<{ no: string }>(`WITH due AS (
        SELECT combine_out_trade_no, next_check_ms FROM orders WHERE watch = 1 AND next_check_ms <= $1
        ORDER BY next_check_ms LIMIT $2 FOR UPDATE SKIP LOCKED),
      leased AS (UPDATE orders o SET next_check_ms = $3 FROM due WHERE o.combine_out_trade_no = due.combine_out_trade_no
        RETURNING o.combine_out_trade_no AS no, due.next_check_ms AS was)
      SELECT no FROM leased ORDER BY was, no`, [now, limit, now + leaseMs], 'orders_claim_due');
    return rows.map((r) => r.no);
  }

  /** Nothing on PostgreSQL: another relay may be sending them; their lease brings them due. */
  async resumePending(): Promise<void> {}

  async list(f: ListFilter): Promise<Order[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown) => `$${args.push(v)}`;
    const openOnly = f.open || (f.state !== undefined && OPEN_STATES.includes(f.state));
    if (openOnly) where.push(`o.state IN ${OPEN_SQL}`);
    if (f.open) where.push("o.creation != 'FAILED'");
    if (f.state) where.push(`o.state = ${arg(f.state)}`);
    if (f.olderThanMinutes !== undefined) where.push(`o.created_ms <= ${arg(Date.now() - f.olderThanMinutes * 60_000)}`);
    if (f.q !== undefined) {
      // Number search: the beginning of (or a whole) order, sub-order or transaction number, each
      // a byte-order range on a COLLATE "C" index (migration-core.ts); the newest NUMBER_HITS of each.
      if (!/^[0-9A-Za-z_-]{1,64}$/.test(f.q)) return [];
      const lo = arg(f.q);
      const hi = arg(f.q + '\u{10FFFF}');
      const range = (col: string) => `${col} COLLATE "C" >= ${lo} AND ${col} COLLATE "C" < ${hi} ORDER BY ${col} COLLATE "C" DESC LIMIT ${NUMBER_HITS}`;
      where.push(`o.combine_out_trade_no IN (
        (SELECT combine_out_trade_no FROM orders WHERE ${range('combine_out_trade_no')})
        UNION (SELECT combine_out_trade_no FROM sub_orders WHERE ${range('out_trade_no')})
        UNION (SELECT combine_out_trade_no FROM order_transactions WHERE ${range('transaction_id')}))`);
    }
    if (f.dateStartMs !== undefined) where.push(`o.created_ms >= ${arg(f.dateStartMs)} AND o.created_ms < ${arg(f.dateStartMs + 86_400_000)}`);
    if (f.terminal) where.push(`o.terminal = ${arg(f.terminal)}`);
    const cols = ORDER_COLUMNS.replace(/(^|,\s*)(\w+)/g, '$1o.$2');
    const sql = `SELECT ${cols} FROM orders o ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY o.created_ms DESC LIMIT ${arg(f.limit)}`;
    return this.toOrders((await this.exec(sql, args)).map(toOrderRow));
  }

  async takings(dayStartMs: number): Promise<{ mchid: string; amount: number; count: number }[]> {
    const rows = await this.exec<{ mchid: string; amount: string; count: string }>(`SELECT s.mchid AS mchid, SUM(s.amount) AS amount, COUNT(*) AS count FROM orders o
      JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no
      WHERE o.state = 'SUCCESS' AND o.paid_ms >= $1 AND o.paid_ms < $2 GROUP BY s.mchid ORDER BY s.mchid`, [dayStartMs, dayStartMs + 86_400_000]);
    return rows.map((r) => ({ mchid: r.mchid, amount: Number(r.amount), count: Number(r.count) }));
  }
}
