/**
 * Bill runs on PostgreSQL (repo-bills.ts), with several relays on one database.
 *
 * The claim: a SESSION advisory lock (two-int form: BILL_LOCK_CLASS, YYYYMMDD) taken with
 * pg_try_advisory_lock on a connection checked out of the pool for the whole run. Another relay
 * (or this one) asking for the same date gets null at once; a relay that dies loses the lock with
 * its connection. The lock is unlocked before the connection goes back to the pool, and a
 * connection whose unlock failed is destroyed, never pooled with a lock on it.
 *
 * The staging area: two TEMP tables on that same connection (private to it, ON COMMIT PRESERVE
 * ROWS, dropped at the end), loaded in batches with one INSERT … SELECT FROM unnest(arrays) per
 * table and batch (four parameters whatever the batch size; no per-row parameters, no COPY
 * dependency), then ANALYZEd once so the per-page joins are index lookups. The comparison reads
 * keyset pages joined with orders / sub_orders / refunds. Node memory holds one batch or one page.
 */
import type { PoolClient } from 'pg';
import type { ReconciliationReport } from '../../contracts/relay-api';
import type { PgCore } from './core';
import type {
  BillClaim, BillPaymentRow, BillRefundRow, BillRun, BillsRepo, LocalPaymentRow, LocalRefundRow, Page, PageKey, StageBatch,
} from '../repo-bills';

/** First key of a bill run's advisory lock ("bill" as ASCII); the second is the date as YYYYMMDD. */
export const BILL_LOCK_CLASS = 0x62696c6c;

export class BillClaimError extends Error {
  readonly code = 'BILL_CLAIM';
  constructor(message: string) {
    super(message);
    this.name = 'BillClaimError';
  }
}

/** The lock's second key: 2026-03-14 → 20260314 (fits an int4). */
export function billDateKey(billDate: string): number {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(billDate)) throw new BillClaimError(`bill date ${JSON.stringify(billDate)} is not YYYY-MM-DD`);
  return Number(billDate.replaceAll('-', ''));
}

class PgClaim implements BillClaim {
  private released = false;
  /** The connection failed (or a statement left it unusable): destroy it, never pool it. */
  broken = false;
  private readonly onError = () => {
    this.broken = true;
  };

  constructor(readonly billDate: string, readonly c: PoolClient) {
    // A checked-out client has no error listener of the pool's: a connection dropped while idle
    // (server restart, pg_terminate_backend) would otherwise be an unhandled 'error' event.
    c.on('error', this.onError);
  }

  get active(): boolean {
    return !this.released;
  }

  async release(): Promise<void> {
    await this.giveBack(true);
  }

  /** The connection back to the pool; `unlock`: the lock was taken on it (run the unlock first). */
  async giveBack(unlock: boolean): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (unlock && !this.broken) {
      try {
        await this.c.query('SELECT pg_advisory_unlock($1::int, $2::int)', [BILL_LOCK_CLASS, billDateKey(this.billDate)]);
      } catch {
        this.broken = true;
      }
    }
    this.c.removeListener('error', this.onError);
    this.c.release(this.broken ? true : undefined);
  }
}

export class PgBills implements BillsRepo {
  constructor(private readonly core: PgCore) {}

  async claimRun(billDate: string): Promise<BillClaim | null> {
    const key = billDateKey(billDate);
    const c = await this.core.pool.connect();
    const claim = new PgClaim(billDate, c);
    let ok = false;
    try {
      ok = (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [BILL_LOCK_CLASS, key])).rows[0]!.ok;
    } catch (err) {
      claim.broken = true;
      await claim.release();
      throw err;
    }
    if (ok) return claim;
    // Held elsewhere (or by another claim of ours): nothing to unlock on this connection.
    await claim.giveBack(false);
    return null;
  }

  async openRun(claim: BillClaim): Promise<BillRun> {
    if (!(claim instanceof PgClaim) || !claim.active) throw new BillClaimError('openRun needs an active claim of this store');
    try {
      await claim.c.query(`DROP TABLE IF EXISTS pg_temp.bill_stage, pg_temp.bill_stage_r`);
      await claim.c.query(`CREATE TEMP TABLE bill_stage (mchid TEXT NOT NULL, out_trade_no TEXT NOT NULL, transaction_id TEXT NOT NULL, amount INTEGER NOT NULL,
        PRIMARY KEY (mchid, out_trade_no)) ON COMMIT PRESERVE ROWS`);
      await claim.c.query(`CREATE TEMP TABLE bill_stage_r (mchid TEXT NOT NULL, out_refund_no TEXT NOT NULL, out_trade_no TEXT NOT NULL, amount INTEGER NOT NULL,
        PRIMARY KEY (mchid, out_refund_no)) ON COMMIT PRESERVE ROWS`);
    } catch (err) {
      claim.broken = true;
      await claim.release();
      throw err;
    }
    return new PgBillRun(claim);
  }

  async recordRun(billDate: string, at: string, by: string, report: ReconciliationReport): Promise<void> {
    await this.core.q('INSERT INTO bill_runs (bill_date, at, terminal, report) VALUES ($1, $2, $3, $4)', [billDate, at, by, JSON.stringify(report)]);
  }
}

// Staging: the batch's rows unnested from three arrays; a key twice in one batch keeps its last
// row (ON CONFLICT cannot touch one row twice in a statement), a key of an earlier batch is replaced.
const STAGE = `INSERT INTO bill_stage (mchid, out_trade_no, transaction_id, amount)
  SELECT DISTINCT ON (u.k) $1, u.k, u.t, u.a FROM unnest($2::text[], $3::text[], $4::int[]) WITH ORDINALITY AS u(k, t, a, i) ORDER BY u.k, u.i DESC
  ON CONFLICT (mchid, out_trade_no) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, amount = EXCLUDED.amount`;
const STAGE_REFUNDS = `INSERT INTO bill_stage_r (mchid, out_refund_no, out_trade_no, amount)
  SELECT DISTINCT ON (u.k) $1, u.k, u.t, u.a FROM unnest($2::text[], $3::text[], $4::int[]) WITH ORDINALITY AS u(k, t, a, i) ORDER BY u.k, u.i DESC
  ON CONFLICT (mchid, out_refund_no) DO UPDATE SET out_trade_no = EXCLUDED.out_trade_no, amount = EXCLUDED.amount`;

const BILL_PAGE = `SELECT b.out_trade_no, b.transaction_id, b.amount AS bill_amount, s.combine_out_trade_no, s.mchid AS local_mchid, s.amount AS local_amount, o.state
  FROM (SELECT out_trade_no, transaction_id, amount FROM bill_stage WHERE mchid = $1 AND out_trade_no > $2 ORDER BY out_trade_no LIMIT $3) b
  LEFT JOIN sub_orders s ON s.out_trade_no = b.out_trade_no
  LEFT JOIN orders o ON o.combine_out_trade_no = s.combine_out_trade_no
  ORDER BY b.out_trade_no`;

// Along orders_paid_success (paid_ms, combine_out_trade_no) WHERE state = 'SUCCESS' (migration 5):
// the row comparison is an index bound, so each page is a range read from the last key.
const LOCAL_PAGE = `SELECT o.paid_ms, o.combine_out_trade_no, s.out_trade_no, s.mchid, s.amount,
    o.transaction_ids::json ->> s.out_trade_no AS transaction_id,
    EXISTS (SELECT 1 FROM bill_stage b WHERE b.mchid = s.mchid AND b.out_trade_no = s.out_trade_no) AS in_bill
  FROM (SELECT paid_ms, combine_out_trade_no, transaction_ids FROM orders
        WHERE state = 'SUCCESS' AND paid_ms >= $1 AND paid_ms < $2 AND (paid_ms, combine_out_trade_no) > ($3::bigint, $4::text)
        ORDER BY paid_ms, combine_out_trade_no LIMIT $5) o
  JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no
  ORDER BY o.paid_ms, o.combine_out_trade_no, s.idx`;

const BILL_REFUND_PAGE = `SELECT b.out_refund_no, b.out_trade_no, b.amount AS bill_amount, r.combine_out_trade_no, r.mchid AS local_mchid,
    r.out_trade_no AS local_out_trade_no, r.amount AS local_amount, r.status
  FROM (SELECT out_refund_no, out_trade_no, amount FROM bill_stage_r WHERE mchid = $1 AND out_refund_no > $2 ORDER BY out_refund_no LIMIT $3) b
  LEFT JOIN refunds r ON r.out_refund_no = b.out_refund_no
  ORDER BY b.out_refund_no`;

// Along refunds_created (created_ms, out_refund_no) (migration 5).
const LOCAL_REFUND_PAGE = `SELECT r.created_ms, r.out_refund_no, r.out_trade_no, r.combine_out_trade_no, r.mchid, r.amount,
    EXISTS (SELECT 1 FROM bill_stage_r b WHERE b.mchid = r.mchid AND b.out_refund_no = r.out_refund_no) AS in_bill
  FROM refunds r
  WHERE r.created_ms >= $1 AND r.created_ms < $2 AND (r.created_ms, r.out_refund_no) > ($3::bigint, $4::text) AND r.status NOT IN ('FAILED','PENDING')
  ORDER BY r.created_ms, r.out_refund_no LIMIT $5`;

/** Splits flat triplets into three column arrays (one batch: BATCH rows at most). */
function columns(batch: StageBatch): [string[], string[], number[]] {
  const a: string[] = [];
  const b: string[] = [];
  const n: number[] = [];
  for (let i = 0; i < batch.length; i += 3) {
    a.push(String(batch[i]));
    b.push(String(batch[i + 1]));
    n.push(Number(batch[i + 2]));
  }
  return [a, b, n];
}

class PgBillRun implements BillRun {
  /** Statistics are taken once after staging, so the planner knows the staged tables' size. */
  private analyzed = false;
  private dropped = false;

  constructor(private readonly claim: PgClaim) {}

  private get c(): PoolClient {
    return this.claim.c;
  }

  private async q<R>(sql: string, params: unknown[]): Promise<R[]> {
    return (await this.c.query(sql, params)).rows as R[];
  }

  async stage(mchid: string, payments: StageBatch, refunds: StageBatch): Promise<void> {
    const both = payments.length > 0 && refunds.length > 0;
    this.analyzed = false;
    if (both) await this.c.query('BEGIN');
    try {
      if (payments.length > 0) await this.c.query(STAGE, [mchid, ...columns(payments)]);
      if (refunds.length > 0) await this.c.query(STAGE_REFUNDS, [mchid, ...columns(refunds)]);
      if (both) await this.c.query('COMMIT');
    } catch (err) {
      if (both) await this.c.query('ROLLBACK').catch(() => (this.claim.broken = true));
      throw err;
    }
  }

  async discard(mchid: string): Promise<void> {
    this.analyzed = false;
    await this.c.query('BEGIN');
    try {
      await this.c.query('DELETE FROM bill_stage WHERE mchid = $1', [mchid]);
      await this.c.query('DELETE FROM bill_stage_r WHERE mchid = $1', [mchid]);
      await this.c.query('COMMIT');
    } catch (err) {
      await this.c.query('ROLLBACK').catch(() => (this.claim.broken = true));
      throw err;
    }
  }

  private async ready(): Promise<void> {
    if (this.analyzed) return;
    // Autovacuum never analyzes temporary tables: without this the planner guesses their size.
    await this.c.query('ANALYZE bill_stage, bill_stage_r');
    this.analyzed = true;
  }

  async billPage(mchid: string, after: PageKey | null, limit: number): Promise<Page<BillPaymentRow>> {
    await this.ready();
    const rows = await this.q<BillPaymentRow>(BILL_PAGE, [mchid, (after as string | null) ?? '', limit]);
    return { rows, next: rows.length === limit ? rows[rows.length - 1]!.out_trade_no : null };
  }

  async localPage(dayStartMs: number, dayEndMs: number, after: PageKey | null, limit: number): Promise<Page<LocalPaymentRow>> {
    await this.ready();
    const [afterMs, afterNo] = (after as [number, string] | null) ?? [dayStartMs - 1, ''];
    const raw = await this.q<{ paid_ms: string; combine_out_trade_no: string; out_trade_no: string; mchid: string; amount: number; transaction_id: string | null; in_bill: boolean }>(
      LOCAL_PAGE, [Math.max(dayStartMs, afterMs), dayEndMs, afterMs, afterNo, limit],
    );
    let orders = 0;
    let last: [number, string] = [afterMs, afterNo];
    const rows = raw.map((r) => {
      const ms = Number(r.paid_ms);
      if (ms !== last[0] || r.combine_out_trade_no !== last[1]) {
        orders++;
        last = [ms, r.combine_out_trade_no];
      }
      return { out_trade_no: r.out_trade_no, combine_out_trade_no: r.combine_out_trade_no, mchid: r.mchid, amount: r.amount, transaction_id: r.transaction_id, in_bill: r.in_bill };
    });
    return { rows, next: orders === limit ? last : null };
  }

  async billRefundPage(mchid: string, after: PageKey | null, limit: number): Promise<Page<BillRefundRow>> {
    await this.ready();
    const rows = await this.q<BillRefundRow>(BILL_REFUND_PAGE, [mchid, (after as string | null) ?? '', limit]);
    return { rows, next: rows.length === limit ? rows[rows.length - 1]!.out_refund_no : null };
  }

  async localRefundPage(dayStartMs: number, dayEndMs: number, after: PageKey | null, limit: number): Promise<Page<LocalRefundRow>> {
    await this.ready();
    const [afterMs, afterNo] = (after as [number, string] | null) ?? [dayStartMs - 1, ''];
    const raw = await this.q<{ created_ms: string; out_refund_no: string; out_trade_no: string; combine_out_trade_no: string; mchid: string; amount: number; in_bill: boolean }>(
      LOCAL_REFUND_PAGE, [Math.max(dayStartMs, afterMs), dayEndMs, afterMs, afterNo, limit],
    );
    const rows = raw.map(({ out_refund_no, out_trade_no, combine_out_trade_no, mchid, amount, in_bill }) => ({ out_refund_no, out_trade_no, combine_out_trade_no, mchid, amount, in_bill }));
    const last = raw[raw.length - 1];
    return { rows, next: raw.length === limit && last ? [Number(last.created_ms), last.out_refund_no] : null };
  }

  async drop(): Promise<void> {
    if (this.dropped) return;
    this.dropped = true;
    if (!this.claim.broken) {
      try {
        await this.c.query('DROP TABLE IF EXISTS pg_temp.bill_stage, pg_temp.bill_stage_r');
      } catch {
        // Tables left behind must not reach the next user of the connection.
        this.claim.broken = true;
      }
    }
    await this.claim.release();
  }
}
