/**
 * POST /v1/bills/trade: every merchant with keys applies for and downloads its OWN trade bill,
 * signed as itself (merchant mode has no `sub_mchid`: contract §1.1); a participant without keys
 * is reported NO_KEYS. The bills are compared with local orders in a streamed way: memory does
 * not grow with the number of bill rows.
 *
 * How: each bill streams (gzip → SHA1 → parser) into a per-run TEMP table (connection-private,
 * kept in a temporary file, never in relay.db or its WAL) in batches of BATCH rows, each batch
 * one short synchronous transaction. The comparison then walks that table and the day's local
 * orders in keyset pages of PAGE rows, yielding to the event loop between pages, so
 * notifications keep being answered during a long run. At most MAX_MISMATCHES mismatches are
 * kept in the report (the total is counted). Progress is pushed to terminals while it runs.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { isCalendarDate } from '../wechatpay/time';
import type { BillMerchantTotals, BillMismatch, ReconciliationReport, RelayEvent } from '../contracts/relay-api';
import type { Credentials } from '../wechatpay/credentials';
import type { Db } from './db';
import type { Logger } from './log';
import { BadRequest, RelayError } from './errors';
import { classify, MerchantKeysMissingError } from '../wechatpay/errors';
import { errorCode, type PayClients } from './upstream';

export interface BillServiceOptions {
  db: Db;
  clients: PayClients;
  credentials: Credentials;
  log: Logger;
  publish: (e: RelayEvent) => void;
  /** Mismatches kept in a report (all are counted); default MAX_MISMATCHES. */
  maxMismatches?: number;
}

/** Bill rows written per temp-table transaction. */
const BATCH = 5000;
/** Rows read per comparison page (between two yields to the event loop: a few ms each). */
const PAGE = 2000;
/** Mismatches kept in one report; `mismatch_count` has them all. */
export const MAX_MISMATCHES = 1000;

export function validateBillDate(body: unknown, now = Date.now()): string {
  const d = (body as { bill_date?: unknown } | null)?.bill_date;
  if (typeof d !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(d)) throw new BadRequest('bill_date', 'must be YYYY-MM-DD');
  if (!isCalendarDate(d)) throw new BadRequest('bill_date', `${d} is not a calendar date`);
  if (Date.parse(`${d}T00:00:00+08:00`) > now) throw new BadRequest('bill_date', `${d} is in the future`);
  return d;
}

/** Statuses after which a merchant's bill was compared (an absent bill = no trades that day). */
const COMPARED = new Set<BillMerchantTotals['status']>(['OK', 'NO_STATEMENT']);

type BillPageRow = [out_trade_no: string, transaction_id: string, bill_amount: number, combine_out_trade_no: string | null, local_mchid: string | null, local_amount: number | null, state: string | null];
type LocalPageRow = [paid_ms: number, rid: number, out_trade_no: string, combine_out_trade_no: string, mchid: string, amount: number, transaction_id: string | null, in_bill: number];

/** The mismatches of one run: the first `max` kept, all counted. */
class Mismatches {
  readonly kept: BillMismatch[] = [];
  count = 0;
  constructor(private readonly max: number) {}
  add(m: BillMismatch): void {
    this.count++;
    if (this.kept.length < this.max) this.kept.push(m);
  }
}

export class BillService {
  private readonly running = new Set<string>();
  private seq = 0;

  constructor(private readonly o: BillServiceOptions) {}

  async run(billDate: string, by: string): Promise<ReconciliationReport> {
    if (this.running.has(billDate)) throw new RelayError(409, 'BILL_RUN_IN_PROGRESS', `a bill run for ${billDate} is in progress`);
    this.running.add(billDate);
    try {
      const report = await this.runInner(billDate);
      const at = report.generated_at;
      this.o.db.prepare('INSERT INTO bill_runs (bill_date, at, terminal, report) VALUES (?, ?, ?, ?)').run(billDate, at, by, JSON.stringify(report));
      this.o.db.prepare('INSERT INTO audit_log (at, terminal, action, target, detail) VALUES (?, ?, ?, ?, ?)').run(
        at, by, 'bill_run', billDate, JSON.stringify({ ok: report.ok, mismatches: report.mismatch_count, merchants: report.merchants.map((m) => ({ mchid: m.mchid, status: m.status })) }),
      );
      return report;
    } finally {
      this.running.delete(billDate);
    }
  }

  private progress(billDate: string, done: number, total: number, stage: string, mchid?: string): void {
    this.o.publish({ type: 'bill.progress', bill_date: billDate, done, total, stage, ...(mchid ? { mchid } : {}) });
  }

  private async runInner(billDate: string): Promise<ReconciliationReport> {
    const db = this.o.db;
    const table = `temp.bill_stage_${++this.seq}`;
    // The staged rows live in a temporary file; a small page cache for it keeps the relay's
    // memory flat however long the bills are (the OS file cache does the rest).
    db.pragma('temp.cache_size = -2000');
    // Payment rows of the bills of this run: (merchant whose bill it is, sub-order) → amount.
    db.exec(`CREATE TABLE ${table} (mchid TEXT NOT NULL, out_trade_no TEXT NOT NULL, transaction_id TEXT NOT NULL, amount INTEGER NOT NULL,
      PRIMARY KEY (mchid, out_trade_no)) WITHOUT ROWID`);
    // Refund rows of the same bills (bill_type ALL carries them): (merchant, out_refund_no) → amount.
    db.exec(`CREATE TABLE ${table}_r (mchid TEXT NOT NULL, out_refund_no TEXT NOT NULL, out_trade_no TEXT NOT NULL, amount INTEGER NOT NULL,
      PRIMARY KEY (mchid, out_refund_no)) WITHOUT ROWID`);
    try {
      const subs = this.o.credentials.subMerchants;
      const total = subs.length;
      const merchants: BillMerchantTotals[] = [];
      const mismatches = new Mismatches(this.o.maxMismatches ?? MAX_MISMATCHES);
      this.progress(billDate, 0, total, 'start');
      for (const [i, m] of subs.entries()) {
        const totals: BillMerchantTotals = { mchid: m.mchid, name: m.name, status: 'OK', bill_count: 0, bill_amount: 0, local_count: 0, local_amount: 0, fee_amount: 0 };
        merchants.push(totals);
        this.progress(billDate, i, total, 'fetch', m.mchid);
        await this.fetchInto(table, billDate, totals);
        this.progress(billDate, i + 1, total, 'fetched', m.mchid);
      }
      this.progress(billDate, total, total, 'compare');
      await this.compareBillSide(table, merchants, mismatches);
      await this.compareLocalSide(table, billDate, merchants, mismatches);
      await this.compareBillRefunds(table, merchants, mismatches);
      await this.compareLocalRefunds(table, billDate, merchants, mismatches);
      this.progress(billDate, total, total, 'done');
      return {
        bill_date: billDate,
        generated_at: new Date().toISOString(),
        merchants,
        mismatches: mismatches.kept,
        mismatch_count: mismatches.count,
        mismatches_truncated: mismatches.count > mismatches.kept.length,
        // "一致" only when every merchant's bill was compared and nothing differed: a bill not
        // ready yet, a merchant without keys or a failed download leaves the day unproven.
        ok: mismatches.count === 0 && merchants.every((t) => COMPARED.has(t.status)),
      };
    } finally {
      db.exec(`DROP TABLE IF EXISTS ${table}`);
      db.exec(`DROP TABLE IF EXISTS ${table}_r`);
    }
  }

  /** Applies for and streams one merchant's own bill into the run's table; sets its status. */
  private async fetchInto(table: string, billDate: string, t: BillMerchantTotals): Promise<void> {
    if (!this.o.clients.has(t.mchid)) {
      t.status = 'NO_KEYS';
      t.error = `MERCHANT_KEYS_MISSING: no keys for ${t.mchid} here (add merchants/${t.mchid}/ to the credentials folder)`;
      return;
    }
    const db = this.o.db;
    const client = this.o.clients.get(t.mchid);
    const insert = db.prepare(`INSERT OR REPLACE INTO ${table} (mchid, out_trade_no, transaction_id, amount) VALUES (?, ?, ?, ?)`);
    const insertRefund = db.prepare(`INSERT OR REPLACE INTO ${table}_r (mchid, out_refund_no, out_trade_no, amount) VALUES (?, ?, ?, ?)`);
    const flush = db.transaction((rows: (string | number)[], refunds: (string | number)[]) => {
      for (let i = 0; i < rows.length; i += 3) insert.run(t.mchid, rows[i], rows[i + 1], rows[i + 2]);
      for (let i = 0; i < refunds.length; i += 3) insertRefund.run(t.mchid, refunds[i], refunds[i + 1], refunds[i + 2]);
    });
    let fee = 0;
    const batch: (string | number)[] = [];
    const refundBatch: (string | number)[] = [];
    try {
      const applied = await client.applyTradeBill({ bill_date: billDate, tar_type: 'GZIP' });
      const stream = client.downloadTradeBill(applied, { gzip: true });
      // Arrays of records, one per decompressed chunk: no promise per row.
      for await (const rows of stream.batches()) {
        for (const r of rows) {
          fee += r.fee_milli_fen;
          if (r.out_refund_no !== '' && r.out_refund_no !== '0') {
            // A refund row (交易状态 REFUND, 商户退款单号 set): matched with local refunds.
            t.bill_refund_count = (t.bill_refund_count ?? 0) + 1;
            t.bill_refund_amount = (t.bill_refund_amount ?? 0) + r.refund_fee;
            refundBatch.push(r.out_refund_no, r.out_trade_no, r.refund_fee);
            continue;
          }
          if (r.trade_state !== 'SUCCESS') continue;
          t.bill_count++;
          t.bill_amount += r.total_fee;
          batch.push(r.out_trade_no, r.transaction_id, r.total_fee);
        }
        if (batch.length + refundBatch.length >= BATCH * 3) {
          flush(batch, refundBatch);
          batch.length = 0;
          refundBatch.length = 0;
        }
      }
      // Only now is the bill whole and authentic (hash checked at the end of the stream).
      await stream.summary();
      flush(batch, refundBatch);
      t.fee_amount = Math.round(fee / 1000);
    } catch (err) {
      // Nothing of a bill that failed part-way counts: its staged rows and totals are dropped.
      db.prepare(`DELETE FROM ${table} WHERE mchid = ?`).run(t.mchid);
      db.prepare(`DELETE FROM ${table}_r WHERE mchid = ?`).run(t.mchid);
      t.bill_refund_count = 0;
      t.bill_refund_amount = 0;
      t.bill_count = 0;
      t.bill_amount = 0;
      t.fee_amount = 0;
      const code = errorCode(err);
      const kind = classify(err).kind;
      if (kind === 'NO_STATEMENT') {
        t.status = 'NO_STATEMENT';
      } else if (kind === 'STATEMENT_NOT_READY') {
        // WeChat is still generating it: not a failure, try again later; nothing reconciled.
        t.status = 'NOT_READY';
        t.error = `${code}: ${err instanceof Error ? err.message : String(err)}`;
      } else if (err instanceof MerchantKeysMissingError) {
        t.status = 'NO_KEYS';
        t.error = `${code}: ${err instanceof Error ? err.message : String(err)}`;
      } else {
        t.status = 'FAILED';
        t.error = `${code}: ${err instanceof Error ? err.message : String(err)}`;
        this.o.log.warn({ mchid: t.mchid, code }, 'bill fetch failed');
      }
    }
  }

  /** Bill rows against local sub-orders (indexed by out_trade_no), page by page. */
  private async compareBillSide(table: string, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    const page = this.o.db.prepare(`SELECT b.out_trade_no, b.transaction_id, b.amount, s.combine_out_trade_no, s.mchid, s.amount, o.state
      FROM (SELECT out_trade_no, transaction_id, amount FROM ${table} WHERE mchid = ? AND out_trade_no > ? ORDER BY out_trade_no LIMIT ${PAGE}) b
      LEFT JOIN sub_orders s ON s.out_trade_no = b.out_trade_no
      LEFT JOIN orders o ON o.combine_out_trade_no = s.combine_out_trade_no`).raw(true);
    for (const t of merchants) {
      if (!COMPARED.has(t.status)) continue;
      let after = '';
      for (;;) {
        const rows = page.all(t.mchid, after) as BillPageRow[];
        if (rows.length === 0) break;
        for (const [no, txid, billAmount, combine, localMchid, localAmount, state] of rows) {
          if (no > after) after = no;
          const base = { mchid: t.mchid, out_trade_no: no, transaction_id: txid || null, bill_amount: billAmount };
          if (combine === null) {
            mismatches.add({ kind: 'UNKNOWN_ORDER', ...base, combine_out_trade_no: null, local_amount: null, message: `${no} is in ${t.mchid}'s bill but unknown here` });
          } else if (localMchid !== t.mchid) {
            mismatches.add({ kind: 'MCHID_MISMATCH', ...base, combine_out_trade_no: combine, local_amount: localAmount, message: `${no} is in ${t.mchid}'s bill but was created for ${localMchid}` });
          } else if (state !== 'SUCCESS') {
            mismatches.add({ kind: 'NOT_PAID_LOCALLY', ...base, combine_out_trade_no: combine, local_amount: localAmount, message: `${no} is paid in the bill but ${state} here` });
          } else if (localAmount !== billAmount) {
            mismatches.add({ kind: 'AMOUNT_MISMATCH', ...base, combine_out_trade_no: combine, local_amount: localAmount, message: `${no}: bill ${billAmount} fen, here ${localAmount} fen` });
          }
        }
        if (rows.length < PAGE) break;
        await yieldToLoop();
      }
    }
  }

  /**
   * The day's local payments (state SUCCESS, paid that Beijing day), page by page along the
   * partial index orders_paid_success (paid_ms WHERE state = 'SUCCESS'): O(that day's payments),
   * whatever the history. Local totals for every merchant, and MISSING_IN_BILL for a merchant
   * whose bill was compared (one that could not be fetched proves nothing missing).
   */
  private async compareLocalSide(table: string, billDate: string, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    const dayStart = Date.parse(`${billDate}T00:00:00+08:00`);
    const dayEnd = dayStart + 86_400_000;
    const totals = new Map(merchants.map((m) => [m.mchid, m]));
    // Transaction ids live on the order row (migration 3), keyed by sub-order number.
    const page = this.o.db.prepare(`SELECT o.paid_ms, o.rid, s.out_trade_no, s.combine_out_trade_no, s.mchid, s.amount,
        json_extract(o.transaction_ids, '$."' || s.out_trade_no || '"'),
        EXISTS (SELECT 1 FROM ${table} b WHERE b.mchid = s.mchid AND b.out_trade_no = s.out_trade_no)
      FROM (SELECT rowid AS rid, combine_out_trade_no, paid_ms, transaction_ids FROM orders INDEXED BY orders_paid_success
            WHERE state = 'SUCCESS' AND paid_ms >= ? AND paid_ms < ? AND (paid_ms > ? OR rowid > ?) ORDER BY paid_ms, rowid LIMIT ${PAGE}) o
      JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no`).raw(true);
    let afterMs = dayStart - 1;
    let afterRid = 0;
    for (;;) {
      // The range starts at the last page's paid_ms (an index seek, not a rescan from the day's
      // start); rows at exactly that paid_ms are told apart by rowid.
      const rows = page.all(Math.max(dayStart, afterMs), dayEnd, afterMs, afterRid) as LocalPageRow[];
      if (rows.length === 0) break;
      const orders = new Set<number>();
      for (const [paidMs, rid, no, combine, mchid, amount, txid, inBill] of rows) {
        orders.add(rid);
        if (paidMs > afterMs || (paidMs === afterMs && rid > afterRid)) {
          afterMs = paidMs;
          afterRid = rid;
        }
        const t = totals.get(mchid);
        if (t) {
          t.local_count++;
          t.local_amount += amount;
        }
        if (inBill || !t || !COMPARED.has(t.status)) continue;
        mismatches.add({
          kind: 'MISSING_IN_BILL', mchid, out_trade_no: no, combine_out_trade_no: combine, transaction_id: txid,
          local_amount: amount, bill_amount: null, message: `${no} was paid here but is not in ${mchid}'s bill`,
        });
      }
      if (orders.size < PAGE) break;
      await yieldToLoop();
    }
  }

  /**
   * The bills' refund rows against local refunds (by out_refund_no, the primary key), page by
   * page: REFUND_UNKNOWN when we never made it (or WeChat Pay refused it here),
   * REFUND_AMOUNT_MISMATCH when the amount, sub-order or merchant differ.
   */
  private async compareBillRefunds(table: string, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    const page = this.o.db.prepare(`SELECT b.out_refund_no, b.out_trade_no, b.amount, r.combine_out_trade_no, r.mchid, r.out_trade_no, r.amount, r.status
      FROM (SELECT out_refund_no, out_trade_no, amount FROM ${table}_r WHERE mchid = ? AND out_refund_no > ? ORDER BY out_refund_no LIMIT ${PAGE}) b
      LEFT JOIN refunds r ON r.out_refund_no = b.out_refund_no`).raw(true);
    for (const t of merchants) {
      if (!COMPARED.has(t.status)) continue;
      let after = '';
      for (;;) {
        const rows = page.all(t.mchid, after) as [string, string, number, string | null, string | null, string | null, number | null, string | null][];
        if (rows.length === 0) break;
        for (const [rno, no, billAmount, combine, localMchid, localNo, localAmount, status] of rows) {
          if (rno > after) after = rno;
          const base = { mchid: t.mchid, out_trade_no: no, out_refund_no: rno, transaction_id: null, bill_amount: billAmount };
          if (combine === null || status === 'FAILED') {
            mismatches.add({ kind: 'REFUND_UNKNOWN', ...base, combine_out_trade_no: combine, local_amount: null, message: `refund ${rno} of ${no} is in ${t.mchid}'s bill but unknown here` });
          } else if (localMchid !== t.mchid || localNo !== no || localAmount !== billAmount) {
            mismatches.add({
              kind: 'REFUND_AMOUNT_MISMATCH', ...base, combine_out_trade_no: combine, local_amount: localAmount,
              message: `refund ${rno}: bill ${billAmount} fen of ${no} (${t.mchid}), here ${localAmount} fen of ${localNo} (${localMchid})`,
            });
          }
        }
        if (rows.length < PAGE) break;
        await yieldToLoop();
      }
    }
  }

  /**
   * The day's local refunds (initiated that Beijing day: the bill dates a refund row by its
   * initiation), along the refunds_created index in keyset pages. Every refund WeChat Pay
   * accepted (all but FAILED, and PENDING whose fate is still being asked) must have a row in
   * its merchant's bill: else REFUND_MISSING_IN_BILL (for a merchant whose bill was compared).
   */
  private async compareLocalRefunds(table: string, billDate: string, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    const dayStart = Date.parse(`${billDate}T00:00:00+08:00`);
    const totals = new Map(merchants.map((m) => [m.mchid, m]));
    const page = this.o.db.prepare(`SELECT r.created_ms, r.out_refund_no, r.out_trade_no, r.combine_out_trade_no, r.mchid, r.amount,
        EXISTS (SELECT 1 FROM ${table}_r b WHERE b.mchid = r.mchid AND b.out_refund_no = r.out_refund_no)
      FROM refunds r INDEXED BY refunds_created
      WHERE r.created_ms >= ? AND r.created_ms < ? AND (r.created_ms > ? OR r.out_refund_no > ?) AND r.status NOT IN ('FAILED','PENDING')
      ORDER BY r.created_ms, r.out_refund_no LIMIT ${PAGE}`).raw(true);
    let afterMs = dayStart - 1;
    let afterNo = '';
    for (;;) {
      const rows = page.all(Math.max(dayStart, afterMs), dayStart + 86_400_000, afterMs, afterNo) as [number, string, string, string, string, number, number][];
      if (rows.length === 0) break;
      for (const [ms, rno, no, combine, mchid, amount, inBill] of rows) {
        if (ms > afterMs || (ms === afterMs && rno > afterNo)) {
          afterMs = ms;
          afterNo = rno;
        }
        const t = totals.get(mchid);
        if (t) {
          t.local_refund_count = (t.local_refund_count ?? 0) + 1;
          t.local_refund_amount = (t.local_refund_amount ?? 0) + amount;
        }
        if (inBill || !t || !COMPARED.has(t.status)) continue;
        mismatches.add({
          kind: 'REFUND_MISSING_IN_BILL', mchid, out_trade_no: no, out_refund_no: rno, combine_out_trade_no: combine, transaction_id: null,
          local_amount: amount, bill_amount: null, message: `refund ${rno} of ${no} was made here but is not in ${mchid}'s bill`,
        });
      }
      if (rows.length < PAGE) break;
      await yieldToLoop();
    }
  }
}
