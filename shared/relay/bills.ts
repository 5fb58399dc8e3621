/**
 * POST /v1/bills/trade: every merchant with keys applies for and downloads its OWN trade bill,
 * signed as itself (merchant mode has no `sub_mchid`: contract §1.1); a participant without keys
 * is reported NO_KEYS. The bills are compared with local orders in a streamed way: memory does
 * not grow with the number of bill rows.
 *
 * How: each bill streams (gzip → SHA1 → parser) into the run's staging area of the store
 * (repo-bills.ts: SQLite TEMP tables in a temporary file; PostgreSQL TEMP tables on the run's
 * own connection) in batches of BATCH rows, one transaction each. The comparison then walks
 * that area and the day's local orders in keyset pages of PAGE rows, yielding to the event loop
 * between pages, so notifications keep being answered during a long run. At most MAX_MISMATCHES
 * mismatches are kept in the report (the total is counted). Progress is pushed to terminals
 * while it runs. A bill date is claimed in the store for the run: across every relay sharing the
 * database, one run of a date at a time (409 BILL_RUN_IN_PROGRESS to the others).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { isCalendarDate } from '../wechatpay/time';
import type { BillMerchantTotals, BillMismatch, ReconciliationReport, RelayEvent } from '../contracts/relay-api';
import type { Credentials } from '../wechatpay/credentials';
import type { RelayStore } from './repo-types';
import type { BillRun, PageKey } from './repo-bills';
import type { Logger } from './log';
import { BadRequest, RelayError } from './errors';
import { classify, MerchantKeysMissingError } from '../wechatpay/errors';
import { errorCode, type PayClients } from './upstream';

export interface BillServiceOptions {
  store: RelayStore;
  clients: PayClients;
  credentials: Credentials;
  log: Logger;
  publish: (e: RelayEvent) => void;
  /** Mismatches kept in a report (all are counted); default MAX_MISMATCHES. */
  maxMismatches?: number;
}

/** Bill rows staged per transaction. */
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
  constructor(private readonly o: BillServiceOptions) {}

  async run(billDate: string, by: string): Promise<ReconciliationReport> {
    const bills = this.o.store.bills;
    const claim = await bills.claimRun(billDate);
    if (!claim) throw new RelayError(409, 'BILL_RUN_IN_PROGRESS', `a bill run for ${billDate} is in progress`);
    try {
      const run = await bills.openRun(claim);
      try {
        const report = await this.runInner(run, billDate);
        // Recorded while the date is still claimed: the next run of it comes after this one.
        const at = report.generated_at;
        await bills.recordRun(billDate, at, by, report);
        await this.o.store.audit.add(by, 'bill_run', billDate, {
          ok: report.ok, mismatches: report.mismatch_count, merchants: report.merchants.map((m) => ({ mchid: m.mchid, status: m.status })),
        });
        return report;
      } finally {
        await run.drop();
      }
    } finally {
      await claim.release();
    }
  }

  private progress(billDate: string, done: number, total: number, stage: string, mchid?: string): void {
    this.o.publish({ type: 'bill.progress', bill_date: billDate, done, total, stage, ...(mchid ? { mchid } : {}) });
  }

  private async runInner(run: BillRun, billDate: string): Promise<ReconciliationReport> {
    const subs = this.o.credentials.subMerchants;
    const total = subs.length;
    const merchants: BillMerchantTotals[] = [];
    const mismatches = new Mismatches(this.o.maxMismatches ?? MAX_MISMATCHES);
    this.progress(billDate, 0, total, 'start');
    for (const [i, m] of subs.entries()) {
      const totals: BillMerchantTotals = { mchid: m.mchid, name: m.name, status: 'OK', bill_count: 0, bill_amount: 0, local_count: 0, local_amount: 0, fee_amount: 0 };
      merchants.push(totals);
      this.progress(billDate, i, total, 'fetch', m.mchid);
      await this.fetchInto(run, billDate, totals);
      this.progress(billDate, i + 1, total, 'fetched', m.mchid);
    }
    this.progress(billDate, total, total, 'compare');
    await this.compareBillSide(run, merchants, mismatches);
    await this.compareLocalSide(run, billDate, merchants, mismatches);
    await this.compareBillRefunds(run, merchants, mismatches);
    await this.compareLocalRefunds(run, billDate, merchants, mismatches);
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
  }

  /** Applies for and streams one merchant's own bill into the run's staging area; sets its status. */
  private async fetchInto(run: BillRun, billDate: string, t: BillMerchantTotals): Promise<void> {
    if (!this.o.clients.has(t.mchid)) {
      t.status = 'NO_KEYS';
      t.error = `MERCHANT_KEYS_MISSING: no keys for ${t.mchid} here (add merchants/${t.mchid}/ to the credentials folder)`;
      return;
    }
    const client = this.o.clients.get(t.mchid);
    let fee = 0;
    // Flat triplets (repo-bills.ts StageBatch): no object per row.
    let batch: (string | number)[] = [];
    let refundBatch: (string | number)[] = [];
    const flush = async () => {
      const [p, r] = [batch, refundBatch];
      batch = [];
      refundBatch = [];
      await run.stage(t.mchid, p, r);
    };
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
        if (batch.length + refundBatch.length >= BATCH * 3) await flush();
      }
      // Only now is the bill whole and authentic (hash checked at the end of the stream).
      await stream.summary();
      await flush();
      t.fee_amount = Math.round(fee / 1000);
    } catch (err) {
      // Nothing of a bill that failed part-way counts: its staged rows and totals are dropped.
      await run.discard(t.mchid);
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

  /** Bill rows against local sub-orders (by out_trade_no), page by page. */
  private async compareBillSide(run: BillRun, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    for (const t of merchants) {
      if (!COMPARED.has(t.status)) continue;
      for (let after: PageKey | null = null; ;) {
        const page = await run.billPage(t.mchid, after, PAGE);
        for (const r of page.rows) {
          const no = r.out_trade_no;
          const base = { mchid: t.mchid, out_trade_no: no, transaction_id: r.transaction_id || null, bill_amount: r.bill_amount };
          if (r.combine_out_trade_no === null) {
            mismatches.add({ kind: 'UNKNOWN_ORDER', ...base, combine_out_trade_no: null, local_amount: null, message: `${no} is in ${t.mchid}'s bill but unknown here` });
          } else if (r.local_mchid !== t.mchid) {
            mismatches.add({ kind: 'MCHID_MISMATCH', ...base, combine_out_trade_no: r.combine_out_trade_no, local_amount: r.local_amount, message: `${no} is in ${t.mchid}'s bill but was created for ${r.local_mchid}` });
          } else if (r.state !== 'SUCCESS') {
            mismatches.add({ kind: 'NOT_PAID_LOCALLY', ...base, combine_out_trade_no: r.combine_out_trade_no, local_amount: r.local_amount, message: `${no} is paid in the bill but ${r.state} here` });
          } else if (r.local_amount !== r.bill_amount) {
            mismatches.add({ kind: 'AMOUNT_MISMATCH', ...base, combine_out_trade_no: r.combine_out_trade_no, local_amount: r.local_amount, message: `${no}: bill ${r.bill_amount} fen, here ${r.local_amount} fen` });
          }
        }
        if (page.next === null) break;
        after = page.next;
        await yieldToLoop();
      }
    }
  }

  /**
   * The day's local payments (state SUCCESS, paid that Beijing day), page by page along the paid
   * orders' index: O(that day's payments), whatever the history. Local totals for every merchant,
   * and MISSING_IN_BILL for a merchant whose bill was compared (one that could not be fetched
   * proves nothing missing).
   */
  private async compareLocalSide(run: BillRun, billDate: string, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    const dayStart = Date.parse(`${billDate}T00:00:00+08:00`);
    const totals = new Map(merchants.map((m) => [m.mchid, m]));
    for (let after: PageKey | null = null; ;) {
      const page = await run.localPage(dayStart, dayStart + 86_400_000, after, PAGE);
      for (const r of page.rows) {
        const t = totals.get(r.mchid);
        if (t) {
          t.local_count++;
          t.local_amount += r.amount;
        }
        if (r.in_bill || !t || !COMPARED.has(t.status)) continue;
        mismatches.add({
          kind: 'MISSING_IN_BILL', mchid: r.mchid, out_trade_no: r.out_trade_no, combine_out_trade_no: r.combine_out_trade_no, transaction_id: r.transaction_id,
          local_amount: r.amount, bill_amount: null, message: `${r.out_trade_no} was paid here but is not in ${r.mchid}'s bill`,
        });
      }
      if (page.next === null) break;
      after = page.next;
      await yieldToLoop();
    }
  }

  /**
   * The bills' refund rows against local refunds (by out_refund_no), page by page:
   * REFUND_UNKNOWN when we never made it (or WeChat Pay refused it here),
   * REFUND_AMOUNT_MISMATCH when the amount, sub-order or merchant differ.
   */
  private async compareBillRefunds(run: BillRun, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    for (const t of merchants) {
      if (!COMPARED.has(t.status)) continue;
      for (let after: PageKey | null = null; ;) {
        const page = await run.billRefundPage(t.mchid, after, PAGE);
        for (const r of page.rows) {
          const [rno, no] = [r.out_refund_no, r.out_trade_no];
          const base = { mchid: t.mchid, out_trade_no: no, out_refund_no: rno, transaction_id: null, bill_amount: r.bill_amount };
          if (r.combine_out_trade_no === null || r.status === 'FAILED') {
            mismatches.add({ kind: 'REFUND_UNKNOWN', ...base, combine_out_trade_no: r.combine_out_trade_no, local_amount: null, message: `refund ${rno} of ${no} is in ${t.mchid}'s bill but unknown here` });
          } else if (r.local_mchid !== t.mchid || r.local_out_trade_no !== no || r.local_amount !== r.bill_amount) {
            mismatches.add({
              kind: 'REFUND_AMOUNT_MISMATCH', ...base, combine_out_trade_no: r.combine_out_trade_no, local_amount: r.local_amount,
              message: `refund ${rno}: bill ${r.bill_amount} fen of ${no} (${t.mchid}), here ${r.local_amount} fen of ${r.local_out_trade_no} (${r.local_mchid})`,
            });
          }
        }
        if (page.next === null) break;
        after = page.next;
        await yieldToLoop();
      }
    }
  }

  /**
   * The day's local refunds (initiated that Beijing day: the bill dates a refund row by its
   * initiation), in keyset pages. Every refund WeChat Pay accepted (all but FAILED, and PENDING
   * whose fate is still being asked) must have a row in its merchant's bill: else
   * REFUND_MISSING_IN_BILL (for a merchant whose bill was compared).
   */
  private async compareLocalRefunds(run: BillRun, billDate: string, merchants: BillMerchantTotals[], mismatches: Mismatches): Promise<void> {
    const dayStart = Date.parse(`${billDate}T00:00:00+08:00`);
    const totals = new Map(merchants.map((m) => [m.mchid, m]));
    for (let after: PageKey | null = null; ;) {
      const page = await run.localRefundPage(dayStart, dayStart + 86_400_000, after, PAGE);
      for (const r of page.rows) {
        const t = totals.get(r.mchid);
        if (t) {
          t.local_refund_count = (t.local_refund_count ?? 0) + 1;
          t.local_refund_amount = (t.local_refund_amount ?? 0) + r.amount;
        }
        if (r.in_bill || !t || !COMPARED.has(t.status)) continue;
        mismatches.add({
          kind: 'REFUND_MISSING_IN_BILL', mchid: r.mchid, out_trade_no: r.out_trade_no, out_refund_no: r.out_refund_no, combine_out_trade_no: r.combine_out_trade_no,
          transaction_id: null, local_amount: r.amount, bill_amount: null, message: `refund ${r.out_refund_no} of ${r.out_trade_no} was made here but is not in ${r.mchid}'s bill`,
        });
      }
      if (page.next === null) break;
      after = page.next;
      await yieldToLoop();
    }
  }
}
