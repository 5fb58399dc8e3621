/**
 * Figures for the counter: a shift's report, the manager's day-end, and the day's takings. The
 * relay computes them, so every terminal shows the same numbers. A sale counts once — per order,
 * and once per merchant it contains — never once per sub-order. The figures come from the
 * store's report queries (repo-counter.ts: each one snapshot, on the paid-orders, open-orders
 * and terminal indexes: a report costs its own orders, not the history); refunds from the
 * refund ledger; the assembly is here.
 *
 * CSV: UTF-8 with a BOM (Excel then reads Chinese correctly), CRLF lines, amounts as yuan
 * strings made from integer fen (no floating point anywhere).
 */
import type {
  DayEndBillStatus, DayEndMerchant, DayEndReport, MerchantFigures, RefundFigures, ReportTotals, Shift, ShiftReport,
} from '../contracts/counter-api';
import type { ReconciliationReport } from '../contracts/relay-api';
import type { MerchantSales, ReportsRepo } from './repo-counter';

/** Where refunds come from (the store's refunds repository). Absent: figures say "not available". */
export interface RefundLedger {
  /** Successful refunds made in [fromMs, toMs) (at `terminal` when given), per merchant. */
  totals(fromMs: number, toMs: number, terminal?: string): Promise<{ mchid: string; count: number; amount: number }[]>;
}

export interface ReportDeps {
  repo: ReportsRepo;
  merchants: () => { mchid: string; name: string }[];
  refunds?: () => RefundLedger | null;
}

const NO_REFUNDS_NOTE = 'refunds are not recorded by this relay: counted as 0';
const DAY_MS = 86_400_000;

/** Integer fen → yuan string ("-12.05"), by integer arithmetic only. */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen)) throw new TypeError(`fen must be an integer, got ${fen}`);
  const neg = fen < 0;
  const abs = Math.abs(fen);
  const yuan = Math.trunc(abs / 100);
  const cents = String(abs % 100).padStart(2, '0');
  return `${neg ? '-' : ''}${yuan}.${cents}`;
}

/** Beijing wall time `YYYY-MM-DD HH:mm:ss` of an instant. */
export function beijingText(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
}

function csvField(v: string | number): string {
  let s = String(v);
  // A text cell starting like a formula would run in a spreadsheet: shown as text instead.
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows: (string | number)[][]): Buffer {
  const text = rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
  return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
}

export class Reports {
  constructor(private readonly d: ReportDeps) {}

  private names(): Map<string, string> {
    return new Map(this.d.merchants().map((m) => [m.mchid, m.name]));
  }

  /** Sales per merchant beside the refunds made in the span (at `terminal` when given). */
  private async perMerchant(rows: MerchantSales[], fromMs: number, toMs: number, terminal?: string): Promise<MerchantFigures[]> {
    const ledger = this.d.refunds?.() ?? null;
    const refunds = new Map((ledger ? await ledger.totals(fromMs, toMs, terminal) : []).map((r) => [r.mchid, r]));
    const names = this.names();
    const byMchid = new Map(rows.map((r) => [r.mchid, r]));
    // Every configured merchant appears (zero rows too), then any other seen in the data.
    const ids = [...names.keys(), ...[...byMchid.keys(), ...refunds.keys()].filter((m) => !names.has(m))];
    return [...new Set(ids)].map((mchid) => {
      const r = byMchid.get(mchid);
      const f = refunds.get(mchid);
      const amount = r?.amount ?? 0;
      const refundAmount = f?.amount ?? 0;
      return { mchid, name: names.get(mchid) ?? mchid, count: r?.count ?? 0, amount, refund_count: f?.count ?? 0, refund_amount: refundAmount, net: amount - refundAmount };
    });
  }

  private refundFigures(merchants: MerchantFigures[]): RefundFigures {
    const available = !!this.d.refunds?.();
    return {
      count: merchants.reduce((a, m) => a + m.refund_count, 0),
      amount: merchants.reduce((a, m) => a + m.refund_amount, 0),
      available,
      note: available ? null : NO_REFUNDS_NOTE,
    };
  }

  /**
   * A shift's report. Its sales: its terminal's orders created within the shift and paid (by the
   * time of the report). By creation, not payment time: WeChat Pay's success time has whole
   * seconds, and a sale belongs to the cashier who made it even when the customer pays a moment
   * after the handover.
   */
  async shift(shift: Shift, nowMs = Date.now()): Promise<ShiftReport> {
    const from = Date.parse(shift.opened_at);
    const to = shift.closed_at ? Date.parse(shift.closed_at) : nowMs;
    const f = await this.d.repo.shift(shift.terminal, from, to);
    const merchants = await this.perMerchant(f.merchants, from, to, shift.terminal);
    const refunds = this.refundFigures(merchants);
    return {
      shift, from: new Date(from).toISOString(), to: new Date(to).toISOString(),
      sales: f.sales, merchants, refunds, net: f.sales.amount - refunds.amount,
      open_orders: f.open,
      unpaid: f.unpaid,
      generated_at: new Date(nowMs).toISOString(),
    };
  }

  async dayEnd(date: string, dayStartMs: number, shifts: Shift[], nowMs = Date.now()): Promise<DayEndReport> {
    const to = dayStartMs + DAY_MS;
    const f = await this.d.repo.day(dayStartMs, to);
    const base = await this.perMerchant(f.merchants, dayStartMs, to);
    const refunds = this.refundFigures(base);
    const run = await this.d.repo.lastBillRun(date);
    const report = run ? (JSON.parse(run.report) as ReconciliationReport) : null;
    const merchants: DayEndMerchant[] = base.map((m) => {
      const b = report?.merchants.find((x) => x.mchid === m.mchid);
      return {
        ...m,
        bill_status: (b?.status as DayEndBillStatus | undefined) ?? 'NEVER_RUN',
        bill_mismatches: report ? report.mismatches.filter((x) => x.mchid === m.mchid).length : 0,
      };
    });
    return {
      date, sales: f.sales, merchants, terminals: f.terminals, refunds, net: f.sales.amount - refunds.amount,
      open_orders: f.open,
      bill_run_at: run?.at ?? null, shifts, generated_at: new Date(nowMs).toISOString(),
    };
  }

  /** `/v1/takings`: per merchant (sales containing it, its amount) plus the day's sales counted once each. */
  async takings(dayStartMs: number): Promise<{ merchants: { mchid: string; name: string; amount: number; count: number; gross_amount: number; refund_amount: number; refund_count: number }[]; count: number; amount: number; gross_amount: number; refund_amount: number; refund_count: number }> {
    const to = dayStartMs + DAY_MS;
    const f = await this.d.repo.paid(dayStartMs, to);
    // `amount` is net of the day's SUCCESS refunds (refunds module); gross and refund figures beside it.
    const merchants = (await this.perMerchant(f.merchants, dayStartMs, to)).map((m) => ({
      mchid: m.mchid, name: m.name, amount: m.net, count: m.count, gross_amount: m.amount, refund_amount: m.refund_amount, refund_count: m.refund_count,
    }));
    const refundAmount = merchants.reduce((a, m) => a + m.refund_amount, 0);
    const refundCount = merchants.reduce((a, m) => a + m.refund_count, 0);
    return { merchants, count: f.sales.count, amount: f.sales.amount - refundAmount, gross_amount: f.sales.amount, refund_amount: refundAmount, refund_count: refundCount };
  }
}

function figureRows(merchants: MerchantFigures[], sales: ReportTotals, refunds: RefundFigures, net: number, withBill?: DayEndMerchant[]): (string | number)[][] {
  const rows: (string | number)[][] = [[
    '商户号 Merchant ID', '商户 Merchant', '笔数 Sales', '金额 Amount', '退款笔数 Refunds', '退款金额 Refunded', '净额 Net', ...(withBill ? ['对账 Bill'] : []),
  ]];
  merchants.forEach((m, i) => rows.push([
    m.mchid, m.name, m.count, fenToYuan(m.amount), m.refund_count, fenToYuan(m.refund_amount), fenToYuan(m.net), ...(withBill ? [withBill[i]!.bill_status] : []),
  ]));
  rows.push(['合计 Total', '', sales.count, fenToYuan(sales.amount), refunds.count, fenToYuan(refunds.amount), fenToYuan(net)]);
  if (!refunds.available) rows.push(['注 Note', refunds.note ?? '']);
  return rows;
}

export function shiftCsv(r: ShiftReport): Buffer {
  return toCsv([
    ['交班报表 Shift report', String(r.shift.id)],
    ['终端 Terminal', r.shift.terminal],
    ['收银员 Cashier', r.shift.cashier],
    ['开始 From', beijingText(Date.parse(r.from))],
    ['结束 To', beijingText(Date.parse(r.to))],
    ['状态 State', r.shift.closed_at ? '已交班 closed' : '进行中 open'],
    [],
    ...figureRows(r.merchants, r.sales, r.refunds, r.net),
    [],
    ['未付订单 Open orders', r.open_orders.count, fenToYuan(r.open_orders.amount)],
    ['已关闭未付 Closed unpaid', r.unpaid.closed],
    ['失败 Failed', r.unpaid.failed],
    ['生成 Generated', beijingText(Date.parse(r.generated_at))],
  ]);
}

export function dayEndCsv(r: DayEndReport): Buffer {
  return toCsv([
    ['日结报表 Day-end report', r.date],
    ['对账时间 Bill run', r.bill_run_at ? beijingText(Date.parse(r.bill_run_at)) : '未对账 never run'],
    [],
    ...figureRows(r.merchants, r.sales, r.refunds, r.net, r.merchants),
    [],
    ['终端 Terminal', '笔数 Sales', '金额 Amount'],
    ...r.terminals.map((t) => [t.terminal, t.count, fenToYuan(t.amount)]),
    [],
    ['未付订单 Open orders', r.open_orders.count, fenToYuan(r.open_orders.amount)],
    ['班次 Shifts', r.shifts.length],
    ...r.shifts.map((s) => [s.id, s.terminal, s.cashier, beijingText(Date.parse(s.opened_at)), s.closed_at ? beijingText(Date.parse(s.closed_at)) : '']),
    ['生成 Generated', beijingText(Date.parse(r.generated_at))],
  ]);
}
