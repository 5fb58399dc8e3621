/**
 * Layout of the two receipts: the order slip (QR to scan, total, each sub-merchant's lines, expiry)
 * and the paid receipt (transaction ids, paid time). Reprints carry a REPRINT marker.
 */
import type { Order } from '../../contracts/relay-api';
import type { Language, PaperWidth, PrintKind } from '../../contracts/terminal-api';
import { fenToYuan, isoBeijingDateTime as time } from './format';
import type { Block, ReceiptDocument } from './document';

const LABELS = {
  'zh-CN': {
    slipTitle: '微信支付 合单付款', receiptTitle: '支付成功', order: '订单号', created: '下单时间', expires: '有效期至',
    paid: '支付时间', total: '合计', scan: '请使用微信「扫一扫」付款', txn: '交易单号', merchant: '商户', reprint: '** 重印 REPRINT **',
    cashier: '收银员', refund: '退款', refunded: '已退款', net: '实收', refundStates: { PROCESSING: '处理中', SUCCESS: '成功', CLOSED: '已关闭', ABNORMAL: '异常' },
  },
  en: {
    slipTitle: 'WeChat Pay - combined order', receiptTitle: 'PAID', order: 'Order', created: 'Created', expires: 'Pay before',
    paid: 'Paid at', total: 'TOTAL', scan: 'Scan with WeChat to pay', txn: 'Transaction', merchant: 'Merchant', reprint: '** REPRINT **',
    cashier: 'Cashier', refund: 'Refund', refunded: 'Refunded', net: 'NET', refundStates: { PROCESSING: 'processing', SUCCESS: 'done', CLOSED: 'closed', ABNORMAL: 'abnormal' },
  },
} as const;

export interface ReceiptInput {
  kind: PrintKind;
  order: Order;
  /** mchid → display name */
  merchantNames: Record<string, string>;
  reprint: boolean;
  width: PaperWidth;
  language: Language;
  /** Store header of every slip and receipt (settings `store_name`, `store_address`; "" = none). */
  storeName?: string;
  storeAddress?: string;
  /** Printed on the paid receipt (setting `cashier_name`; "" = none). */
  cashierName?: string;
}

/** The store's name and address, centred at the top of every paper we print. */
export function storeHeader(name: string | undefined, address: string | undefined): Block[] {
  const b: Block[] = [];
  if (name) b.push({ t: 'text', text: name, align: 'center', bold: true, big: true });
  if (address) b.push({ t: 'text', text: address, align: 'center' });
  if (b.length) b.push({ t: 'rule' });
  return b;
}

export const yuan = (fen: number): string => `¥${fenToYuan(fen)}`;

export function buildReceipt(input: ReceiptInput): ReceiptDocument {
  const L = LABELS[input.language];
  const { order } = input;
  const b: Block[] = [];
  if (input.reprint) b.push({ t: 'text', text: L.reprint, align: 'center', bold: true });
  b.push(...storeHeader(input.storeName, input.storeAddress));
  b.push({ t: 'text', text: input.kind === 'slip' ? L.slipTitle : L.receiptTitle, align: 'center', bold: true, big: input.kind === 'receipt' });
  b.push({ t: 'text', text: `${L.order}: ${order.combine_out_trade_no}` });
  b.push({ t: 'text', text: `${L.created}: ${time(order.created_at)}` });
  if (input.kind === 'receipt') b.push({ t: 'text', text: `${L.paid}: ${time(order.paid_at)}` });
  if (input.kind === 'receipt' && input.cashierName) b.push({ t: 'text', text: `${L.cashier}: ${input.cashierName}` });
  b.push({ t: 'rule' });
  for (const sub of order.sub_orders) {
    const name = input.merchantNames[sub.mchid] ?? sub.mchid;
    // A typed amount carries the merchant's name as its description: one line, not the name twice.
    if (sub.description === name) {
      b.push({ t: 'pair', left: `${L.merchant}: ${name}`, right: yuan(sub.amount), bold: true });
    } else {
      b.push({ t: 'text', text: `${L.merchant}: ${name}`, bold: true });
      b.push({ t: 'pair', left: sub.description, right: yuan(sub.amount) });
    }
    if (input.kind === 'receipt' && sub.transaction_id) b.push({ t: 'pair', left: `${L.txn}:`, right: sub.transaction_id }); // kept unbroken on 58 mm
    // The paid receipt (a reprint after a refund): each refund of this sub-order, with its state.
    if (input.kind === 'receipt') {
      for (const r of order.refunds ?? []) {
        if (r.out_trade_no !== sub.out_trade_no) continue;
        b.push({ t: 'pair', left: `${L.refund} ${r.out_refund_no} (${L.refundStates[r.status] ?? r.status})`, right: `-${yuan(r.amount)}` });
      }
    }
  }
  b.push({ t: 'rule' });
  b.push({ t: 'pair', left: L.total, right: yuan(order.total_amount), bold: true });
  const refunded = input.kind === 'receipt' ? order.sub_orders.reduce((a, s) => a + (s.refunded_amount ?? 0), 0) : 0;
  if (refunded > 0) {
    b.push({ t: 'pair', left: L.refunded, right: `-${yuan(refunded)}` });
    b.push({ t: 'pair', left: L.net, right: yuan(order.total_amount - refunded), bold: true });
  }
  if (input.kind === 'slip') {
    if (order.code_url) {
      b.push({ t: 'feed', lines: 1 });
      b.push({ t: 'qr', data: order.code_url });
      b.push({ t: 'text', text: L.scan, align: 'center' });
    }
    b.push({ t: 'text', text: `${L.expires}: ${time(order.expires_at)}`, align: 'center', bold: true });
  }
  return { width: input.width, blocks: b };
}
