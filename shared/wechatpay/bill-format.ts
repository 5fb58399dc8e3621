/** The trade bill file layout (reference §6.3), shared by the writer (sandbox) and the parser. */
import type { BillType, TradeBillRecord, TradeBillSummary } from './models';

export const BILL_COLUMNS_ALL = [
  '交易时间', '公众账号ID', '商户号', '特约商户号', '设备号', '微信订单号', '商户订单号', '用户标识', '交易类型', '交易状态',
  '付款银行', '货币种类', '应结订单金额', '代金券金额', '微信退款单号', '商户退款单号', '退款金额', '充值券退款金额', '退款类型',
  '退款状态', '商品名称', '商户数据包', '手续费', '费率', '订单金额', '申请退款金额', '费率备注',
] as const;

export const BILL_SUMMARY_COLUMNS_ALL = [
  '总交易单数', '应结订单总金额', '退款总金额', '充值券退款总金额', '手续费总金额', '订单总金额', '申请退款总金额',
] as const;

/** Every value in detail and summary rows is prefixed with this (an Excel guard). */
export const BILL_FIELD_PREFIX = '`';

/** How a column's text maps onto a record field. */
export type ColumnKind = 'text' | 'fen' | 'milliFen';
export interface ColumnSpec {
  title: string;
  field: keyof TradeBillRecord;
  kind: ColumnKind;
}

const C = (title: string, field: keyof TradeBillRecord, kind: ColumnKind = 'text'): ColumnSpec => ({ title, field, kind });

const HEAD: ColumnSpec[] = [
  C('交易时间', 'trade_time'), C('公众账号ID', 'appid'), C('商户号', 'mchid'), C('特约商户号', 'sub_mchid'),
  C('设备号', 'device_info'), C('微信订单号', 'transaction_id'), C('商户订单号', 'out_trade_no'), C('用户标识', 'openid'),
  C('交易类型', 'trade_type'), C('交易状态', 'trade_state'), C('付款银行', 'bank_type'), C('货币种类', 'currency'),
  C('应结订单金额', 'settlement_total_fee', 'fen'), C('代金券金额', 'coupon_fee', 'fen'),
];
const REFUND_TIMES: ColumnSpec[] = [C('退款申请时间', 'refund_apply_time'), C('退款成功时间', 'refund_success_time')];
const REFUND: ColumnSpec[] = [
  C('微信退款单号', 'refund_id'), C('商户退款单号', 'out_refund_no'), C('退款金额', 'refund_fee', 'fen'),
  C('充值券退款金额', 'coupon_refund_fee', 'fen'), C('退款类型', 'refund_type'), C('退款状态', 'refund_status'),
];
const MIDDLE: ColumnSpec[] = [
  C('商品名称', 'description'), C('商户数据包', 'attach'), C('手续费', 'fee_milli_fen', 'milliFen'), C('费率', 'rate'),
  C('订单金额', 'total_fee', 'fen'),
];
const APPLIED: ColumnSpec[] = [C('申请退款金额', 'applied_refund_fee', 'fen')];
const TAIL: ColumnSpec[] = [C('费率备注', 'rate_note')];

/** Detail columns per bill type: ALL 27, SUCCESS 20, REFUND 29 (reference §6.3). */
export const BILL_COLUMNS: Record<BillType, readonly ColumnSpec[]> = {
  ALL: [...HEAD, ...REFUND, ...MIDDLE, ...APPLIED, ...TAIL],
  SUCCESS: [...HEAD, ...MIDDLE, ...TAIL],
  REFUND: [...HEAD, ...REFUND_TIMES, ...REFUND, ...MIDDLE, ...APPLIED, ...TAIL],
};

export interface SummarySpec {
  title: string;
  field: keyof TradeBillSummary;
  kind: 'count' | 'fen' | 'milliFen';
}
const S = (title: string, field: keyof TradeBillSummary, kind: SummarySpec['kind'] = 'fen'): SummarySpec => ({ title, field, kind });

const SUMMARY_FULL: SummarySpec[] = [
  S('总交易单数', 'total_count', 'count'), S('应结订单总金额', 'settlement_total_fee'), S('退款总金额', 'refund_fee'),
  S('充值券退款总金额', 'coupon_refund_fee'), S('手续费总金额', 'fee_milli_fen', 'milliFen'), S('订单总金额', 'total_fee'),
  S('申请退款总金额', 'applied_refund_fee'),
];
export const BILL_SUMMARY_COLUMNS: Record<BillType, readonly SummarySpec[]> = {
  ALL: SUMMARY_FULL,
  REFUND: SUMMARY_FULL,
  SUCCESS: [S('总交易单数', 'total_count', 'count'), S('应结订单总金额', 'settlement_total_fee'), S('手续费总金额', 'fee_milli_fen', 'milliFen'), S('订单总金额', 'total_fee')],
};

/** The header line (no backticks) of a bill type. */
export function billHeaderLine(type: BillType): string {
  return BILL_COLUMNS[type].map((c) => c.title).join(',');
}
export function billSummaryHeaderLine(type: BillType): string {
  return BILL_SUMMARY_COLUMNS[type].map((c) => c.title).join(',');
}
