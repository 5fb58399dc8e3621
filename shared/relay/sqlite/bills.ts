/**
 * Bill runs on SQLite (repo-bills.ts). One relay process owns the database, so the claim on a
 * bill date is a set in memory. A run stages the bills in two TEMP tables of its own (the
 * connection's temporary database: a temporary file, never relay.db or its WAL), with a small
 * page cache for them so the relay's memory stays flat however long the bills are (the OS file
 * cache does the rest). Every method is a short synchronous statement or transaction: the event
 * loop is free between two pages.
 */
import type { Statement } from 'better-sqlite3';
import type { ReconciliationReport } from '../../contracts/relay-api';
import type { Db } from '../db';
import type { OrderStore } from '../store';
import type {
  BillClaim, BillPaymentRow, BillRefundRow, BillRun, BillsRepo, LocalPaymentRow, LocalRefundRow, Page, PageKey, StageBatch,
} from '../repo-bills';

class Claim implements BillClaim {
  private released = false;
  constructor(readonly billDate: string, private readonly running: Set<string>) {}
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.running.delete(this.billDate);
  }
}

export class SqliteBills implements BillsRepo {
  /** Bill dates being run in this process. */
  private readonly running = new Set<string>();
  private seq = 0;
  private readonly recordStmt: Statement<unknown[]>;

  constructor(private readonly db: Db, _core: OrderStore) {
    this.recordStmt = db.prepare('INSERT INTO bill_runs (bill_date, at, terminal, report) VALUES (?, ?, ?, ?)');
  }

  async claimRun(billDate: string): Promise<BillClaim | null> {
    if (this.running.has(billDate)) return null;
    this.running.add(billDate);
    return new Claim(billDate, this.running);
  }

  async openRun(claim: BillClaim): Promise<BillRun> {
    return new SqliteBillRun(this.db, `temp.bill_stage_${++this.seq}`, claim);
  }

  async recordRun(billDate: string, at: string, by: string, report: ReconciliationReport): Promise<void> {
    this.recordStmt.run(billDate, at, by, JSON.stringify(report));
  }
}

/**
 * The page's largest key. The pages' joins keep the staged side's order in practice, but no outer
 * ORDER BY promises it (one would cost a sort per page): the key is computed, not assumed.
 */
function maxOf<R>(rows: R[], key: (r: R) => string): string {
  let max = '';
  for (const r of rows) if (key(r) > max) max = key(r);
  return max;
}

class SqliteBillRun implements BillRun {
  private readonly s: Record<'insert' | 'insertRefund' | 'discard' | 'discardRefunds' | 'bill' | 'local' | 'billRefunds' | 'localRefunds', Statement<unknown[]>>;
  private readonly flush: (mchid: string, payments: StageBatch, refunds: StageBatch) => void;
  private dropped = false;

  constructor(private readonly db: Db, private readonly table: string, private readonly claim: BillClaim) {
    db.pragma('temp.cache_size = -2000');
    // Payment rows: (merchant whose bill it is, sub-order) → amount; refund rows: (merchant, out_refund_no) → amount.
    db.exec(`CREATE TABLE ${table} (mchid TEXT NOT NULL, out_trade_no TEXT NOT NULL, transaction_id TEXT NOT NULL, amount INTEGER NOT NULL,
      PRIMARY KEY (mchid, out_trade_no)) WITHOUT ROWID`);
    db.exec(`CREATE TABLE ${table}_r (mchid TEXT NOT NULL, out_refund_no TEXT NOT NULL, out_trade_no TEXT NOT NULL, amount INTEGER NOT NULL,
      PRIMARY KEY (mchid, out_refund_no)) WITHOUT ROWID`);
    this.s = {
      insert: db.prepare(`INSERT OR REPLACE INTO ${table} (mchid, out_trade_no, transaction_id, amount) VALUES (?, ?, ?, ?)`),
      insertRefund: db.prepare(`INSERT OR REPLACE INTO ${table}_r (mchid, out_refund_no, out_trade_no, amount) VALUES (?, ?, ?, ?)`),
      discard: db.prepare(`DELETE FROM ${table} WHERE mchid = ?`),
      discardRefunds: db.prepare(`DELETE FROM ${table}_r WHERE mchid = ?`),
      bill: db.prepare(`SELECT b.out_trade_no, b.transaction_id, b.amount, s.combine_out_trade_no, s.mchid, s.amount, o.state
        FROM (SELECT out_trade_no, transaction_id, amount FROM ${table} WHERE mchid = ? AND out_trade_no > ? ORDER BY out_trade_no LIMIT ?) b
        LEFT JOIN sub_orders s ON s.out_trade_no = b.out_trade_no
        LEFT JOIN orders o ON o.combine_out_trade_no = s.combine_out_trade_no`).raw(true),
      // Along the partial index orders_paid_success; the range starts at the last page's paid_ms
      // (an index seek, not a rescan from the day's start), rows at exactly that paid_ms told
      // apart by rowid. Transaction ids live on the order row, keyed by sub-order number.
      local: db.prepare(`SELECT o.paid_ms, o.rid, s.out_trade_no, s.combine_out_trade_no, s.mchid, s.amount,
          json_extract(o.transaction_ids, '$."' || s.out_trade_no || '"'),
          EXISTS (SELECT 1 FROM ${table} b WHERE b.mchid = s.mchid AND b.out_trade_no = s.out_trade_no)
        FROM (SELECT rowid AS rid, combine_out_trade_no, paid_ms, transaction_ids FROM orders INDEXED BY orders_paid_success
              WHERE state = 'SUCCESS' AND paid_ms >= ? AND paid_ms < ? AND (paid_ms > ? OR rowid > ?) ORDER BY paid_ms, rowid LIMIT ?) o
        JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no`).raw(true),
      billRefunds: db.prepare(`SELECT b.out_refund_no, b.out_trade_no, b.amount, r.combine_out_trade_no, r.mchid, r.out_trade_no, r.amount, r.status
        FROM (SELECT out_refund_no, out_trade_no, amount FROM ${table}_r WHERE mchid = ? AND out_refund_no > ? ORDER BY out_refund_no LIMIT ?) b
        LEFT JOIN refunds r ON r.out_refund_no = b.out_refund_no`).raw(true),
      localRefunds: db.prepare(`SELECT r.created_ms, r.out_refund_no, r.out_trade_no, r.combine_out_trade_no, r.mchid, r.amount,
          EXISTS (SELECT 1 FROM ${table}_r b WHERE b.mchid = r.mchid AND b.out_refund_no = r.out_refund_no)
        FROM refunds r INDEXED BY refunds_created
        WHERE r.created_ms >= ? AND r.created_ms < ? AND (r.created_ms > ? OR r.out_refund_no > ?) AND r.status NOT IN ('FAILED','PENDING')
        ORDER BY r.created_ms, r.out_refund_no LIMIT ?`).raw(true),
    };
    this.flush = db.transaction((mchid: string, payments: StageBatch, refunds: StageBatch) => {
      for (let i = 0; i < payments.length; i += 3) this.s.insert.run(mchid, payments[i], payments[i + 1], payments[i + 2]);
      for (let i = 0; i < refunds.length; i += 3) this.s.insertRefund.run(mchid, refunds[i], refunds[i + 1], refunds[i + 2]);
    });
  }

  async stage(mchid: string, payments: StageBatch, refunds: StageBatch): Promise<void> {
    if (payments.length + refunds.length > 0) this.flush(mchid, payments, refunds);
  }

  async discard(mchid: string): Promise<void> {
    this.db.transaction(() => {
      this.s.discard.run(mchid);
      this.s.discardRefunds.run(mchid);
    })();
  }

  async billPage(mchid: string, after: PageKey | null, limit: number): Promise<Page<BillPaymentRow>> {
    const raw = this.s.bill.all(mchid, (after as string | null) ?? '', limit) as [string, string, number, string | null, string | null, number | null, string | null][];
    const rows = raw.map(([out_trade_no, transaction_id, bill_amount, combine_out_trade_no, local_mchid, local_amount, state]) => ({
      out_trade_no, transaction_id, bill_amount, combine_out_trade_no, local_mchid, local_amount, state,
    }));
    return { rows, next: rows.length === limit ? maxOf(rows, (r) => r.out_trade_no) : null };
  }

  async localPage(dayStartMs: number, dayEndMs: number, after: PageKey | null, limit: number): Promise<Page<LocalPaymentRow>> {
    const [afterMs, afterRid] = (after as [number, number] | null) ?? [dayStartMs - 1, 0];
    const raw = this.s.local.all(Math.max(dayStartMs, afterMs), dayEndMs, afterMs, afterRid, limit) as [number, number, string, string, string, number, string | null, number][];
    const orders = new Set<number>();
    let last: [number, number] = [afterMs, afterRid];
    const rows = raw.map(([paidMs, rid, out_trade_no, combine_out_trade_no, mchid, amount, transaction_id, inBill]) => {
      orders.add(rid);
      if (paidMs > last[0] || (paidMs === last[0] && rid > last[1])) last = [paidMs, rid];
      return { out_trade_no, combine_out_trade_no, mchid, amount, transaction_id, in_bill: inBill === 1 };
    });
    return { rows, next: orders.size === limit ? last : null };
  }

  async billRefundPage(mchid: string, after: PageKey | null, limit: number): Promise<Page<BillRefundRow>> {
    const raw = this.s.billRefunds.all(mchid, (after as string | null) ?? '', limit) as [string, string, number, string | null, string | null, string | null, number | null, string | null][];
    const rows = raw.map(([out_refund_no, out_trade_no, bill_amount, combine_out_trade_no, local_mchid, local_out_trade_no, local_amount, status]) => ({
      out_refund_no, out_trade_no, bill_amount, combine_out_trade_no, local_mchid, local_out_trade_no, local_amount, status,
    }));
    return { rows, next: rows.length === limit ? maxOf(rows, (r) => r.out_refund_no) : null };
  }

  async localRefundPage(dayStartMs: number, dayEndMs: number, after: PageKey | null, limit: number): Promise<Page<LocalRefundRow>> {
    const [afterMs, afterNo] = (after as [number, string] | null) ?? [dayStartMs - 1, ''];
    const raw = this.s.localRefunds.all(Math.max(dayStartMs, afterMs), dayEndMs, afterMs, afterNo, limit) as [number, string, string, string, string, number, number][];
    const rows = raw.map(([, out_refund_no, out_trade_no, combine_out_trade_no, mchid, amount, inBill]) => ({
      out_refund_no, out_trade_no, combine_out_trade_no, mchid, amount, in_bill: inBill === 1,
    }));
    const lastRaw = raw[raw.length - 1];
    return { rows, next: raw.length === limit && lastRaw ? [lastRaw[0], lastRaw[1]] : null };
  }

  async drop(): Promise<void> {
    if (this.dropped) return;
    this.dropped = true;
    try {
      this.db.exec(`DROP TABLE IF EXISTS ${this.table}`);
      this.db.exec(`DROP TABLE IF EXISTS ${this.table}_r`);
    } catch {
      // A closed database took its temporary tables with it.
    } finally {
      await this.claim.release();
    }
  }
}
