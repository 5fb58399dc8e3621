/**
 * Refunds on PostgreSQL, shared by every relay process on the database.
 *
 * Every transaction that changes what an Order shows (record, a status change, a notification)
 * takes the feed lock FIRST (core.ts): besides ordering the change cursor, that lock serializes
 * them across relays, so a record's read of what is already taken of a sub-order (READ
 * COMMITTED: each statement sees what committed before it) can never miss another relay's
 * concurrent refund, and the sum never exceeds what was paid. The follower's claim, note and
 * schedule touch only scheduling/error columns: no feed lock; a claim skips rows another relay
 * holds (FOR UPDATE SKIP LOCKED) and never waits.
 */
import type { OrderRow, SubOrderRow } from '../repo-types';
import {
  COUNTING, movesForward, watchAfter,
  type NewRefund, type RefundApplyResult, type RefundDecisionInput, type RefundMismatch, type RefundNotification, type RefundRecordInput,
  type RefundRecordResult, type RefundRow, type RefundsRepo, type RefundTotal, type RefundUpdate,
} from '../repo-refunds';
import type { PgCore, Tx } from './core';

type Raw = Record<string, unknown>;

/** BIGINT columns come back as strings. */
function refundRow(r: Raw): RefundRow {
  return { ...(r as unknown as RefundRow), created_ms: Number(r.created_ms), next_check_ms: Number(r.next_check_ms) };
}

function orderRow(r: Raw): OrderRow {
  const n = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return {
    ...(r as unknown as OrderRow),
    created_ms: Number(r.created_ms), expires_ms: Number(r.expires_ms), paid_ms: n(r.paid_ms), updated_ms: Number(r.updated_ms),
    next_check_ms: Number(r.next_check_ms), cursor: Number(r.cursor),
  };
}

const SUB_COLUMNS = 'out_trade_no, combine_out_trade_no, idx, mchid, description, amount, attach';

/** The UNIQUE (terminal, idempotency_key) of refunds (PostgreSQL's default constraint name). */
const isKeyTaken = (err: unknown): boolean => (err as { code?: string }).code === '23505'
  && (err as { constraint?: string }).constraint === 'refunds_terminal_idempotency_key_key';

export class PgRefunds implements RefundsRepo {
  constructor(private readonly core: PgCore) {}

  private async getIn(q: (sql: string, params: unknown[]) => Promise<Raw[]>, no: string): Promise<RefundRow | undefined> {
    const rows = await q('SELECT * FROM refunds WHERE out_refund_no = $1', [no]);
    return rows[0] ? refundRow(rows[0]) : undefined;
  }

  async get(no: string): Promise<RefundRow | undefined> {
    return this.getIn((sql, p) => this.core.q(sql, p), no);
  }

  async byIdempotencyKey(terminal: string, key: string): Promise<RefundRow | undefined> {
    const rows = await this.core.q('SELECT * FROM refunds WHERE terminal = $1 AND idempotency_key = $2', [terminal, key]);
    return rows[0] ? refundRow(rows[0]) : undefined;
  }

  async record(input: RefundRecordInput, decide: (d: RefundDecisionInput) => NewRefund): Promise<RefundRecordResult> {
    try {
      return await this.core.tx(async (t) => {
        // The feed lock is held from here (tx option): every other record/update waits for our commit.
        if (input.idempotencyKey !== null) {
          const existing = await t.q('SELECT * FROM refunds WHERE terminal = $1 AND idempotency_key = $2', [input.terminal, input.idempotencyKey]);
          if (existing[0]) return { kind: 'existing', row: refundRow(existing[0]) } as const;
        }
        const orders = await t.q('SELECT * FROM orders WHERE combine_out_trade_no = $1', [input.orderNo]);
        const order = orders[0] ? orderRow(orders[0]) : undefined;
        const subs = order ? await t.q<SubOrderRow & Raw>(`SELECT ${SUB_COLUMNS} FROM sub_orders WHERE combine_out_trade_no = $1 ORDER BY idx`, [input.orderNo]) : [];
        const sub = subs.find((s) => s.out_trade_no === input.outTradeNo);
        const taken = sub
          ? Number((await t.q<{ n: string }>(`SELECT COALESCE(SUM(amount), 0) AS n FROM refunds WHERE out_trade_no = $1 AND status IN ${COUNTING}`, [sub.out_trade_no]))[0]!.n)
          : 0;
        const { row: r } = decide({ order, subs, taken });
        const inserted = await t.q(`INSERT INTO refunds (out_refund_no, combine_out_trade_no, out_trade_no, mchid, amount, total, reason, status, created_at, created_ms,
          terminal, idempotency_key, request_hash, next_check_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`, [
          r.out_refund_no, r.combine_out_trade_no, r.out_trade_no, r.mchid, r.amount, r.total, r.reason, r.status, r.created_at, r.created_ms,
          r.terminal, r.idempotency_key, r.request_hash, r.next_check_ms,
        ]);
        await t.touch(r.combine_out_trade_no, r.created_ms);
        return { kind: 'recorded', row: refundRow(inserted[0]!) } as const;
      }, { feed: true });
    } catch (err) {
      // Only possible if a writer outside this protocol took the key: its refund is the answer.
      if (isKeyTaken(err) && input.idempotencyKey !== null) {
        const existing = await this.byIdempotencyKey(input.terminal, input.idempotencyKey);
        if (existing) return { kind: 'existing', row: existing };
      }
      throw err;
    }
  }

  /** Inside a feed transaction: the forward move (compare-and-set on the status read) and the touch. */
  private async updateIn(t: Tx, row: RefundRow, u: RefundUpdate, now: number): Promise<RefundRow | null> {
    if (!movesForward(row.status, u.status)) return null;
    const rows = await t.q(`UPDATE refunds SET status = $3, refund_id = COALESCE($4, refund_id), success_time = COALESCE($5, success_time),
      error_code = $6, error_message = $7, watch = $8 WHERE out_refund_no = $1 AND status = $2 RETURNING *`, [
      row.out_refund_no, row.status, u.status, u.refund_id ?? null, u.success_time ?? null, u.error_code ?? null,
      u.error_message?.slice(0, 500) ?? null, watchAfter(u.status),
    ]);
    if (!rows[0]) return null;
    await t.touch(row.combine_out_trade_no, now);
    return refundRow(rows[0]);
  }

  async update(no: string, u: RefundUpdate, now = Date.now()): Promise<boolean> {
    return this.core.tx(async (t) => {
      const row = await this.getIn(t.q, no);
      return row ? (await this.updateIn(t, row, u, now)) !== null : false;
    }, { feed: true });
  }

  async note(no: string, code: string, message: string): Promise<void> {
    await this.core.q('UPDATE refunds SET error_code = $2, error_message = $3 WHERE out_refund_no = $1', [no, code, message.slice(0, 500)]);
  }

  async schedule(no: string, atMs: number): Promise<void> {
    await this.core.q('UPDATE refunds SET next_check_ms = $2, check_attempts = check_attempts + 1 WHERE out_refund_no = $1', [no, atMs]);
  }

  async claimDue(now: number, limit: number, leaseMs: number): Promise<string[]> {
    // One statement (its own transaction): rows another relay is claiming are skipped, not waited for.
    const rows = await this.core.q<{ out_refund_no: string; due: string }>(`WITH due AS (
        SELECT out_refund_no, next_check_ms FROM refunds WHERE watch = 1 AND next_check_ms <= $1 ORDER BY next_check_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
      UPDATE refunds r SET next_check_ms = $3 FROM due WHERE r.out_refund_no = due.out_refund_no RETURNING r.out_refund_no, due.next_check_ms AS due`,
    [now, limit, now + leaseMs]);
    return rows.sort((a, b) => Number(a.due) - Number(b.due)).map((r) => r.out_refund_no);
  }

  async resumePending(): Promise<void> {
    // Several relays may share the database: a PENDING refund may be another live relay's send
    // in flight. Its lease (next_check_ms) brings it due when that relay is gone.
  }

  async list(dayStartMs: number, status: string | null, limit: number): Promise<RefundRow[]> {
    const rows = await this.core.q(`SELECT * FROM refunds WHERE created_ms >= $1 AND created_ms < $2 AND status != 'FAILED'
      AND ($3::text IS NULL OR status = $3 OR ($3 = 'PROCESSING' AND status = 'PENDING')) ORDER BY created_ms DESC LIMIT $4`,
    [dayStartMs, dayStartMs + 86_400_000, status, limit]);
    return rows.map(refundRow);
  }

  async totals(fromMs: number, toMs: number, terminal?: string): Promise<RefundTotal[]> {
    const rows = terminal === undefined
      ? await this.core.q("SELECT mchid, COUNT(*) AS count, SUM(amount) AS amount FROM refunds WHERE status = 'SUCCESS' AND created_ms >= $1 AND created_ms < $2 GROUP BY mchid", [fromMs, toMs])
      : await this.core.q(`SELECT r.mchid AS mchid, COUNT(*) AS count, SUM(r.amount) AS amount FROM refunds r JOIN orders o ON o.combine_out_trade_no = r.combine_out_trade_no
          WHERE r.status = 'SUCCESS' AND r.created_ms >= $1 AND r.created_ms < $2 AND o.terminal = $3 GROUP BY r.mchid`, [fromMs, toMs, terminal]);
    return rows.map((r) => ({ mchid: r.mchid as string, count: Number(r.count), amount: Number(r.amount) }));
  }

  async ofOrder(no: string): Promise<RefundRow[]> {
    const rows = await this.core.q("SELECT * FROM refunds WHERE combine_out_trade_no = $1 AND status != 'FAILED' ORDER BY created_ms, out_refund_no", [no]);
    return rows.map(refundRow);
  }

  async applyNotification(n: RefundNotification, decide: (row: RefundRow) => RefundMismatch | null, now = Date.now()): Promise<RefundApplyResult> {
    // Feed lock first (core.ts deadlock rule): the same notification delivered to two relays at
    // once is serialized here, and the second finds the first's committed id.
    return this.core.tx(async (t): Promise<RefundApplyResult> => {
      const row = await this.getIn(t.q, n.outRefundNo);
      if (!row) return { kind: 'unknown' };
      const wrong = decide(row);
      if (wrong) return { kind: 'mismatch', ...wrong, row };
      const ins = await t.c.query(`INSERT INTO notifications (id, combine_out_trade_no, event_type, received_at, changed)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
      [n.id, row.combine_out_trade_no, n.eventType, new Date(now).toISOString(), movesForward(row.status, n.update.status) ? 1 : 0]);
      if (!ins.rowCount) return { kind: 'duplicate' };
      const after = await this.updateIn(t, row, n.update, now);
      return { kind: 'applied', changed: after !== null, row: after ?? row };
    }, { feed: true });
  }
}
