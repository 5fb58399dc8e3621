/**
 * Figures for the counter: a shift's report, the manager's day-end, and the day's takings. The
 * relay computes them, so every terminal shows the same numbers. A sale counts once — per order,
 * and once per merchant it contains — never once per sub-order. Reads use the paid-orders,
 * open-orders and terminal indexes: a report costs its own orders, not the history.
 *
 * CSV: UTF-8 with a BOM (Excel then reads Chinese correctly), CRLF lines, amounts as yuan
 * strings made from integer fen (no floating point anywhere).
 */
import type {
  DayEndBillStatus, DayEndMerchant, DayEndReport, MerchantFigures, RefundFigures, ReportTotals, Shift, ShiftReport,
} from '../contracts/counter-api';
import type { ReconciliationReport } from '../contracts/relay-api';
import type { Db } from './db';

/** Where refunds come from, once the relay records them (refunds module). Absent: figures say "not available". */
export interface RefundLedger {
  /** Successful refunds made in [fromMs, toMs) (at `terminal` when given), per merchant. */
  totals(fromMs: number, toMs: number, terminal?: string): { mchid: string; count: number; amount: number }[];
}

export interface ReportDeps {
  db: Db;
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

const PAID = "FROM orders o INDEXED BY orders_paid_success WHERE o.state = 'SUCCESS' AND o.paid_ms >= ? AND o.paid_ms < ?";

export class Reports {
  constructor(private readonly d: ReportDeps) {}

  private names(): Map<string, string> {
    return new Map(this.d.merchants().map((m) => [m.mchid, m.name]));
  }

  /**
   * A shift's sales: its terminal's orders created within the shift and paid (by the time of the
   * report). By creation, not payment time: WeChat Pay's success time has whole seconds, and a sale
   * belongs to the cashier who made it even when the customer pays a moment after the handover.
   */
  private shiftSales(terminal: string, fromMs: number, toMs: number): { totals: ReportTotals; merchants: { mchid: string; count: number; amount: number }[] } {
    const where = "FROM orders o INDEXED BY orders_terminal WHERE o.terminal = ? AND o.created_ms >= ? AND o.created_ms < ? AND o.state = 'SUCCESS'";
    const t = this.d.db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(o.total_amount), 0) AS amount ${where}`).get(terminal, fromMs, toMs) as ReportTotals;
    const merchants = this.d.db.prepare(`SELECT s.mchid AS mchid, COUNT(DISTINCT o.combine_out_trade_no) AS count, SUM(s.amount) AS amount
      ${where.replace('WHERE', 'JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no WHERE')} GROUP BY s.mchid`).all(terminal, fromMs, toMs) as
      { mchid: string; count: number; amount: number }[];
    return { totals: { count: t.count, amount: t.amount }, merchants };
  }

  private totals(fromMs: number, toMs: number, terminal?: string): ReportTotals {
    const r = this.d.db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(o.total_amount), 0) AS amount ${PAID}${terminal !== undefined ? ' AND o.terminal = ?' : ''}`)
      .get(...[fromMs, toMs, ...(terminal !== undefined ? [terminal] : [])]) as ReportTotals;
    return { count: r.count, amount: r.amount };
  }

  private perMerchant(fromMs: number, toMs: number, terminal?: string, given?: { mchid: string; count: number; amount: number }[]): MerchantFigures[] {
    const rows = given ?? this.d.db.prepare(`SELECT s.mchid AS mchid, COUNT(DISTINCT o.combine_out_trade_no) AS count, SUM(s.amount) AS amount
      FROM orders o INDEXED BY orders_paid_success JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no
      WHERE o.state = 'SUCCESS' AND o.paid_ms >= ? AND o.paid_ms < ?${terminal !== undefined ? ' AND o.terminal = ?' : ''} GROUP BY s.mchid`)
      .all(...[fromMs, toMs, ...(terminal !== undefined ? [terminal] : [])]) as { mchid: string; count: number; amount: number }[];
    const ledger = this.d.refunds?.() ?? null;
    const refunds = new Map((ledger?.totals(fromMs, toMs, terminal) ?? []).map((r) => [r.mchid, r]));
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

  shift(shift: Shift, nowMs = Date.now()): ShiftReport {
    const from = Date.parse(shift.opened_at);
    const to = shift.closed_at ? Date.parse(shift.closed_at) : nowMs;
    const made = this.shiftSales(shift.terminal, from, to);
    const sales = made.totals;
    const merchants = this.perMerchant(from, to, shift.terminal, made.merchants);
    const refunds = this.refundFigures(merchants);
    const open = this.d.db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(total_amount), 0) AS amount FROM orders INDEXED BY orders_open
      WHERE state IN ('NOTPAY','USERPAYING') AND creation != 'FAILED' AND terminal = ?`).get(shift.terminal) as ReportTotals;
    const unpaid = this.d.db.prepare(`SELECT COALESCE(SUM(creation != 'FAILED' AND state = 'CLOSED'), 0) AS closed,
      COALESCE(SUM(creation = 'FAILED' OR state = 'PAYERROR'), 0) AS failed
      FROM orders INDEXED BY orders_terminal WHERE terminal = ? AND created_ms >= ? AND created_ms < ?`).get(shift.terminal, from, to) as { closed: number; failed: number };
    return {
      shift, from: new Date(from).toISOString(), to: new Date(to).toISOString(),
      sales, merchants, refunds, net: sales.amount - refunds.amount,
      open_orders: { count: open.count, amount: open.amount },
      unpaid: { closed: unpaid.closed, failed: unpaid.failed },
      generated_at: new Date(nowMs).toISOString(),
    };
  }

  dayEnd(date: string, dayStartMs: number, shifts: Shift[], nowMs = Date.now()): DayEndReport {
    const to = dayStartMs + DAY_MS;
    const sales = this.totals(dayStartMs, to);
    const base = this.perMerchant(dayStartMs, to);
    const refunds = this.refundFigures(base);
    const run = this.d.db.prepare('SELECT at, report FROM bill_runs WHERE bill_date = ? ORDER BY id DESC LIMIT 1').get(date) as { at: string; report: string } | undefined;
    const report = run ? (JSON.parse(run.report) as ReconciliationReport) : null;
    const merchants: DayEndMerchant[] = base.map((m) => {
      const b = report?.merchants.find((x) => x.mchid === m.mchid);
      return {
        ...m,
        bill_status: (b?.status as DayEndBillStatus | undefined) ?? 'NEVER_RUN',
        bill_mismatches: report ? report.mismatches.filter((x) => x.mchid === m.mchid).length : 0,
      };
    });
    const terminals = this.d.db.prepare(`SELECT o.terminal AS terminal, COUNT(*) AS count, SUM(o.total_amount) AS amount ${PAID} GROUP BY o.terminal ORDER BY o.terminal`)
      .all(dayStartMs, to) as { terminal: string; count: number; amount: number }[];
    const open = this.d.db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(total_amount), 0) AS amount FROM orders INDEXED BY orders_open
      WHERE state IN ('NOTPAY','USERPAYING') AND creation != 'FAILED' AND created_ms >= ? AND created_ms < ?`).get(dayStartMs, to) as ReportTotals;
    return {
      date, sales, merchants, terminals, refunds, net: sales.amount - refunds.amount,
      open_orders: { count: open.count, amount: open.amount },
      bill_run_at: run?.at ?? null, shifts, generated_at: new Date(nowMs).toISOString(),
    };
  }

  /** `/v1/takings`: per merchant (sales containing it, its amount) plus the day's sales counted once each. */
  takings(dayStartMs: number): { merchants: { mchid: string; name: string; amount: number; count: number; gross_amount: number; refund_amount: number; refund_count: number }[]; count: number; amount: number; gross_amount: number; refund_amount: number; refund_count: number } {
    const t = this.totals(dayStartMs, dayStartMs + DAY_MS);
    // `amount` is net of the day's SUCCESS refunds (refunds module); gross and refund figures beside it.
    const merchants = this.perMerchant(dayStartMs, dayStartMs + DAY_MS).map((m) => ({
      mchid: m.mchid, name: m.name, amount: m.net, count: m.count, gross_amount: m.amount, refund_amount: m.refund_amount, refund_count: m.refund_count,
    }));
    const refundAmount = merchants.reduce((a, m) => a + m.refund_amount, 0);
    const refundCount = merchants.reduce((a, m) => a + m.refund_count, 0);
    return { merchants, count: t.count, amount: t.amount - refundAmount, gross_amount: t.amount, refund_amount: refundAmount, refund_count: refundCount };
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
