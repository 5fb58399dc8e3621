/**
 * The shift report (交班报表) on the receipt printer: the relay's figures as they are (this file
 * does no arithmetic of its own), so the paper shows what every terminal sees.
 */
import type { ShiftReport } from '../../contracts/counter-api';
import type { Language, PaperWidth } from '../../contracts/terminal-api';
import type { Block, ReceiptDocument } from './document';
import { beijingDateTime } from './format';
import { storeHeader, yuan } from './receipt';

const LABELS = {
  'zh-CN': {
    title: '交班报表', shift: '班次', terminal: '终端', cashier: '收银员', from: '开始', to: '结束', sales: '销售', count: '笔',
    refunds: '退款', net: '净额', open: '未付订单', closed: '关闭未付', failed: '失败', total: '合计', printed: '打印时间',
    noRefunds: '(本系统未记录退款)', reprint: '** 重印 REPRINT **', stillOpen: '(班次未结束)',
  },
  en: {
    title: 'SHIFT REPORT', shift: 'Shift', terminal: 'Terminal', cashier: 'Cashier', from: 'From', to: 'To', sales: 'Sales', count: '',
    refunds: 'Refunds', net: 'NET', open: 'Open orders', closed: 'Closed unpaid', failed: 'Failed', total: 'TOTAL', printed: 'Printed',
    noRefunds: '(refunds not recorded here)', reprint: '** REPRINT **', stillOpen: '(shift still open)',
  },
} as const;

export interface ShiftReportInput {
  report: ShiftReport;
  reprint: boolean;
  width: PaperWidth;
  language: Language;
  storeName?: string;
  storeAddress?: string;
  now?: Date;
}

export function buildShiftReport(input: ShiftReportInput): ReceiptDocument {
  const L = LABELS[input.language];
  const r = input.report;
  const n = (c: number) => (L.count ? `${c} ${L.count}` : `x${c}`);
  const b: Block[] = [];
  if (input.reprint) b.push({ t: 'text', text: L.reprint, align: 'center', bold: true });
  b.push(...storeHeader(input.storeName, input.storeAddress));
  b.push({ t: 'text', text: L.title, align: 'center', bold: true, big: true });
  b.push({ t: 'pair', left: `${L.shift}`, right: `#${r.shift.id}` });
  b.push({ t: 'pair', left: L.terminal, right: r.shift.terminal });
  if (r.shift.cashier) b.push({ t: 'pair', left: L.cashier, right: r.shift.cashier });
  b.push({ t: 'pair', left: L.from, right: beijingDateTime(Date.parse(r.from)) });
  b.push({ t: 'pair', left: L.to, right: beijingDateTime(Date.parse(r.to)) });
  if (!r.shift.closed_at) b.push({ t: 'text', text: L.stillOpen, align: 'center' });
  b.push({ t: 'rule' });
  for (const m of r.merchants) {
    b.push({ t: 'text', text: m.name, bold: true });
    b.push({ t: 'pair', left: `  ${L.sales} ${n(m.count)}`, right: yuan(m.amount) });
    if (m.refund_count || m.refund_amount) b.push({ t: 'pair', left: `  ${L.refunds} ${n(m.refund_count)}`, right: yuan(-m.refund_amount) });
  }
  b.push({ t: 'rule' });
  b.push({ t: 'pair', left: `${L.sales} ${n(r.sales.count)}`, right: yuan(r.sales.amount), bold: true });
  b.push({ t: 'pair', left: `${L.refunds} ${n(r.refunds.count)}`, right: yuan(-r.refunds.amount) });
  if (!r.refunds.available) b.push({ t: 'text', text: L.noRefunds });
  b.push({ t: 'pair', left: L.net, right: yuan(r.net), bold: true });
  b.push({ t: 'rule' });
  b.push({ t: 'pair', left: `${L.open} ${n(r.open_orders.count)}`, right: yuan(r.open_orders.amount) });
  b.push({ t: 'pair', left: L.closed, right: String(r.unpaid.closed) });
  b.push({ t: 'pair', left: L.failed, right: String(r.unpaid.failed) });
  b.push({ t: 'text', text: `${L.printed}: ${beijingDateTime(input.now ?? new Date())}`, align: 'center' });
  return { width: input.width, blocks: b };
}
