/**
 * POST /v1/bills/trade: for each configured sub-merchant, apply for that day's trade bill
 * (sub_mchid), download it (gzip, SHA1-checked and parsed by the client), store its rows,
 * then reconcile with local orders. Progress is pushed to terminals while it runs.
 */
import { isCalendarDate } from '../wechatpay/time';
import type { BillMerchantTotals, BillMismatch, ReconciliationReport, RelayEvent } from '../contracts/relay-api';
import type { Credentials } from '../wechatpay/credentials';
import type { TradeBillRecord } from '../wechatpay/models';
import { ORDER_HORIZON_MS, type Db } from './db';
import type { Logger } from './log';
import { BadRequest, RelayError } from './errors';
import { errorCode, type PayClient } from './upstream';

export interface BillServiceOptions {
  db: Db;
  client: PayClient;
  credentials: Credentials;
  log: Logger;
  publish: (e: RelayEvent) => void;
}

interface LocalSub {
  out_trade_no: string;
  combine_out_trade_no: string;
  mchid: string;
  amount: number;
  state: string;
  transaction_id: string | null;
  paid_ms: number | null;
}

export function validateBillDate(body: unknown, now = Date.now()): string {
  const d = (body as { bill_date?: unknown } | null)?.bill_date;
  if (typeof d !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(d)) throw new BadRequest('bill_date', 'must be YYYY-MM-DD');
  if (!isCalendarDate(d)) throw new BadRequest('bill_date', `${d} is not a calendar date`);
  if (Date.parse(`${d}T00:00:00+08:00`) > now) throw new BadRequest('bill_date', `${d} is in the future`);
  return d;
}

export class BillService {
  private readonly running = new Set<string>();

  constructor(private readonly o: BillServiceOptions) {}

  async run(billDate: string, by: string): Promise<ReconciliationReport> {
    if (this.running.has(billDate)) throw new RelayError(409, 'BILL_RUN_IN_PROGRESS', `a bill run for ${billDate} is in progress`);
    this.running.add(billDate);
    try {
      const report = await this.runInner(billDate);
      const at = report.generated_at;
      this.o.db.prepare('INSERT INTO bill_runs (bill_date, at, terminal, report) VALUES (?, ?, ?, ?)').run(billDate, at, by, JSON.stringify(report));
      this.o.db.prepare('INSERT INTO audit_log (at, terminal, action, target, detail) VALUES (?, ?, ?, ?, ?)').run(
        at, by, 'bill_run', billDate, JSON.stringify({ ok: report.ok, mismatches: report.mismatches.length, merchants: report.merchants.map((m) => ({ mchid: m.mchid, status: m.status })) }),
      );
      return report;
    } finally {
      this.running.delete(billDate);
    }
  }

  private progress(billDate: string, done: number, total: number, stage: string, mchid?: string): void {
    this.o.publish({ type: 'bill.progress', bill_date: billDate, done, total, stage, ...(mchid ? { mchid } : {}) });
  }

  private async fetch(billDate: string, mchid: string): Promise<TradeBillRecord[]> {
    const res = await this.o.client.applyTradeBill({ bill_date: billDate, sub_mchid: mchid, tar_type: 'GZIP' });
    const stream = this.o.client.downloadTradeBill(res, { gzip: true });
    const rows: TradeBillRecord[] = [];
    for await (const r of stream) rows.push(r);
    await stream.summary();
    return rows;
  }

  private store(billDate: string, mchid: string, rows: TradeBillRecord[]): void {
    const db = this.o.db;
    const del = db.prepare('DELETE FROM bill_rows WHERE bill_date = ? AND mchid = ?');
    const ins = db.prepare(`INSERT OR REPLACE INTO bill_rows (bill_date, mchid, out_trade_no, refund_no, trade_state, transaction_id, attach, amount, fee_millifen, trade_time)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    // One transaction: a failed run never leaves half a bill behind.
    db.transaction(() => {
      del.run(billDate, mchid);
      for (const r of rows) {
        ins.run(billDate, mchid, r.out_trade_no, r.out_refund_no || '0', r.trade_state, r.transaction_id, r.attach, r.trade_state === 'REFUND' ? -r.refund_fee : r.total_fee, r.fee_milli_fen, r.trade_time);
      }
    })();
  }

  private async runInner(billDate: string): Promise<ReconciliationReport> {
    const subs = this.o.credentials.subMerchants;
    const total = subs.length;
    const merchants: BillMerchantTotals[] = [];
    const billRows = new Map<string, TradeBillRecord[]>();
    this.progress(billDate, 0, total, 'start');
    for (const [i, m] of subs.entries()) {
      const totals: BillMerchantTotals = { mchid: m.mchid, name: m.name, status: 'OK', bill_count: 0, bill_amount: 0, local_count: 0, local_amount: 0, fee_amount: 0 };
      merchants.push(totals);
      this.progress(billDate, i, total, 'fetch', m.mchid);
      let rows: TradeBillRecord[] = [];
      try {
        rows = await this.fetch(billDate, m.mchid);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'NO_STATEMENT_EXIST') totals.status = 'NO_STATEMENT';
        else if (code === 'STATEMENT_CREATING') {
          // WeChat is still generating it: not a failure, try again later; nothing reconciled.
          totals.status = 'NOT_READY';
          totals.error = `${code}: ${err instanceof Error ? err.message : String(err)}`;
        } else {
          totals.status = 'FAILED';
          totals.error = `${code}: ${err instanceof Error ? err.message : String(err)}`;
          this.o.log.warn({ mchid: m.mchid, code }, 'bill fetch failed');
        }
      }
      if (totals.status !== 'FAILED' && totals.status !== 'NOT_READY') {
        this.store(billDate, m.mchid, rows);
        billRows.set(m.mchid, rows);
      }
      this.progress(billDate, i + 1, total, 'fetched', m.mchid);
    }
    const mismatches = this.reconcile(billDate, merchants, billRows);
    this.progress(billDate, total, total, 'done');
    return { bill_date: billDate, generated_at: new Date().toISOString(), merchants, mismatches, ok: mismatches.length === 0 && merchants.every((m) => m.status !== 'FAILED') };
  }

  private reconcile(billDate: string, merchants: BillMerchantTotals[], billRows: Map<string, TradeBillRecord[]>): BillMismatch[] {
    const db = this.o.db;
    const dayStart = Date.parse(`${billDate}T00:00:00+08:00`);
    // Transaction ids live on the order row (migration 3), keyed by sub-order number.
    const localPaid = db.prepare(`SELECT s.out_trade_no, s.combine_out_trade_no, s.mchid, s.amount, o.state,
      json_extract(o.transaction_ids, '$."' || s.out_trade_no || '"') AS transaction_id, o.paid_ms
      FROM sub_orders s JOIN orders o ON o.combine_out_trade_no = s.combine_out_trade_no
      WHERE o.created_ms >= ? AND o.created_ms < ? AND o.state = 'SUCCESS' AND o.paid_ms >= ? AND o.paid_ms < ?`)
      .all(dayStart - ORDER_HORIZON_MS, dayStart + 86_400_000, dayStart, dayStart + 86_400_000) as LocalSub[];
    const bySubNo = db.prepare(`SELECT s.out_trade_no, s.combine_out_trade_no, s.mchid, s.amount, o.state,
      json_extract(o.transaction_ids, '$."' || s.out_trade_no || '"') AS transaction_id, o.paid_ms
      FROM sub_orders s JOIN orders o ON o.combine_out_trade_no = s.combine_out_trade_no WHERE s.out_trade_no = ?`);
    const totals = new Map(merchants.map((m) => [m.mchid, m]));
    const mismatches: BillMismatch[] = [];
    const seen = new Set<string>();
    for (const l of localPaid) {
      const t = totals.get(l.mchid);
      if (t) {
        t.local_count++;
        t.local_amount += l.amount;
      }
    }
    for (const [mchid, rows] of billRows) {
      const t = totals.get(mchid)!;
      let fee = 0;
      for (const r of rows) {
        fee += r.fee_milli_fen;
        if (r.trade_state !== 'SUCCESS') continue; // refund rows are not payments to match
        t.bill_count++;
        t.bill_amount += r.total_fee;
        const local = bySubNo.get(r.out_trade_no) as LocalSub | undefined;
        const base = { mchid: r.mchid || mchid, out_trade_no: r.out_trade_no, transaction_id: r.transaction_id || null, bill_amount: r.total_fee };
        if (!local) {
          mismatches.push({ kind: 'UNKNOWN_ORDER', ...base, combine_out_trade_no: null, local_amount: null, message: `${r.out_trade_no} is in ${mchid}'s bill but unknown here` });
          continue;
        }
        seen.add(local.out_trade_no);
        const with_ = { ...base, combine_out_trade_no: local.combine_out_trade_no, local_amount: local.amount };
        if (local.mchid !== mchid) {
          mismatches.push({ kind: 'MCHID_MISMATCH', ...with_, message: `${r.out_trade_no} is in ${mchid}'s bill but was created for ${local.mchid}` });
        } else if (local.state !== 'SUCCESS') {
          mismatches.push({ kind: 'NOT_PAID_LOCALLY', ...with_, message: `${r.out_trade_no} is paid in the bill but ${local.state} here` });
        } else if (local.amount !== r.total_fee) {
          mismatches.push({ kind: 'AMOUNT_MISMATCH', ...with_, message: `${r.out_trade_no}: bill ${r.total_fee} fen, here ${local.amount} fen` });
        }
      }
      t.fee_amount = Math.round(fee / 1000);
    }
    for (const l of localPaid) {
      // A merchant whose bill could not be fetched cannot prove anything missing.
      if (seen.has(l.out_trade_no) || !billRows.has(l.mchid)) continue;
      mismatches.push({
        kind: 'MISSING_IN_BILL', mchid: l.mchid, out_trade_no: l.out_trade_no, combine_out_trade_no: l.combine_out_trade_no, transaction_id: l.transaction_id,
        local_amount: l.amount, bill_amount: null, message: `${l.out_trade_no} was paid here but is not in ${l.mchid}'s bill`,
      });
    }
    return mismatches;
  }
}
