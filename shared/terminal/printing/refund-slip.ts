/**
 * The refund slip (退款凭证) of one refund: store, merchant, order and sub-order numbers, the
 * refund's numbers (ours and WeChat Pay's), amount, status, time, who asked for it and the reason,
 * and what is left to refund of that sub-order. Reprints carry the REPRINT marker.
 */
import type { Order, Refund } from '../../contracts/relay-api';
import type { Language, PaperWidth } from '../../contracts/terminal-api';
import type { Block, ReceiptDocument } from './document';
import { isoBeijingDateTime as time } from './format';
import { storeHeader, yuan } from './receipt';

const LABELS = {
  'zh-CN': {
    title: '退款凭证', order: '订单号', sub: '子单号', merchant: '商户', refundNo: '退款单号', refundId: '微信退款单号',
    amount: '退款金额', status: '状态', created: '申请时间', success: '退款时间', by: '操作终端', reason: '原因', left: '该子单可退余额',
    paid: '子单实付', reprint: '** 重印 REPRINT **', note: '退款将原路退回顾客的支付账户',
    statuses: { PROCESSING: '处理中', SUCCESS: '退款成功', CLOSED: '退款关闭', ABNORMAL: '退款异常' },
  },
  en: {
    title: 'REFUND', order: 'Order', sub: 'Sub-order', merchant: 'Merchant', refundNo: 'Refund no.', refundId: 'WeChat refund',
    amount: 'Refunded', status: 'Status', created: 'Requested', success: 'Refunded at', by: 'Terminal', reason: 'Reason', left: 'Left to refund',
    paid: 'Paid', reprint: '** REPRINT **', note: 'The money goes back to the buyer\'s payment account',
    statuses: { PROCESSING: 'Processing', SUCCESS: 'Refunded', CLOSED: 'Closed', ABNORMAL: 'Abnormal' },
  },
} as const;

export interface RefundSlipInput {
  order: Order;
  outRefundNo: string;
  merchantNames: Record<string, string>;
  reprint: boolean;
  width: PaperWidth;
  language: Language;
  storeName?: string;
  storeAddress?: string;
}

export function buildRefundSlip(input: RefundSlipInput): ReceiptDocument {
  const L = LABELS[input.language];
  const { order } = input;
  const refund: Refund | undefined = order.refunds?.find((r) => r.out_refund_no === input.outRefundNo);
  if (!refund) throw new Error(`order ${order.combine_out_trade_no} has no refund ${input.outRefundNo}`);
  const sub = order.sub_orders.find((s) => s.out_trade_no === refund.out_trade_no);
  const b: Block[] = [];
  if (input.reprint) b.push({ t: 'text', text: L.reprint, align: 'center', bold: true });
  b.push(...storeHeader(input.storeName, input.storeAddress));
  b.push({ t: 'text', text: L.title, align: 'center', bold: true, big: true });
  b.push({ t: 'text', text: `${L.merchant}: ${input.merchantNames[refund.mchid] ?? refund.mchid}`, bold: true });
  b.push({ t: 'text', text: `${L.order}: ${order.combine_out_trade_no}` });
  b.push({ t: 'text', text: `${L.sub}: ${refund.out_trade_no}` });
  b.push({ t: 'text', text: `${L.refundNo}: ${refund.out_refund_no}` });
  if (refund.refund_id) b.push({ t: 'text', text: `${L.refundId}: ${refund.refund_id}` });
  b.push({ t: 'rule' });
  b.push({ t: 'pair', left: L.amount, right: yuan(refund.amount), bold: true });
  b.push({ t: 'pair', left: L.status, right: L.statuses[refund.status] ?? refund.status, bold: true });
  if (sub) {
    b.push({ t: 'pair', left: L.paid, right: yuan(sub.amount) });
    if (sub.refundable_amount !== undefined) b.push({ t: 'pair', left: L.left, right: yuan(sub.refundable_amount) });
  }
  b.push({ t: 'rule' });
  b.push({ t: 'text', text: `${L.created}: ${time(refund.created_at)}` });
  if (refund.success_time) b.push({ t: 'text', text: `${L.success}: ${time(refund.success_time)}` });
  b.push({ t: 'text', text: `${L.by}: ${refund.terminal}` });
  if (refund.reason) b.push({ t: 'text', text: `${L.reason}: ${refund.reason}` });
  b.push({ t: 'feed', lines: 1 });
  b.push({ t: 'text', text: L.note, align: 'center' });
  return { width: input.width, blocks: b };
}
