/**
 * Trade bill files in WeChat Pay's exact layout (reference §6.3): header line, detail rows with
 * every value prefixed by a backtick, summary header, summary row. Pure functions: the sandbox
 * serves what they produce; the tests and the benchmark generate bills with them.
 */
import { BILL_COLUMNS, BILL_FIELD_PREFIX, BILL_SUMMARY_COLUMNS, billHeaderLine, billSummaryHeaderLine } from './bill-format';
import { ValidationError } from './errors';
import { fenToYuan, milliFenToYuan } from './money';
import type { BillType, TradeBillRecord, TradeBillSummary } from './models';

export interface BillWriteOptions {
  /** Detail layout; default ALL. */
  billType?: BillType;
  /** Line terminator; real files use CRLF. */
  eol?: '\r\n' | '\n';
  /** Start with a UTF-8 BOM (some real files do). Default false. */
  bom?: boolean;
  /** Summary row; computed from the rows when omitted. */
  summary?: TradeBillSummary;
}

/**
 * Free text (goods names, attach) cannot carry a backtick or a line break in this format: the
 * parser splits on ",`" and on newlines. Such characters become spaces (a simulator choice;
 * what WeChat Pay does is not documented). Identifiers with them are refused instead.
 */
const FREE_TEXT = new Set<keyof TradeBillRecord>(['description', 'attach', 'rate_note']);

function cell(record: TradeBillRecord, field: keyof TradeBillRecord, kind: 'text' | 'fen' | 'milliFen'): string {
  const v = record[field];
  if (kind === 'fen') return fenToYuan((v as number | undefined) ?? 0);
  if (kind === 'milliFen') return milliFenToYuan((v as number | undefined) ?? 0);
  const s = v === undefined ? '' : String(v);
  if (/[`\r\n]/.test(s)) {
    if (FREE_TEXT.has(field)) return s.replace(/[`\r\n]/g, ' ');
    throw new ValidationError(`/${field}`, 'must not contain a backtick or a line break');
  }
  return s;
}

/** One detail row, without line terminator. */
export function formatTradeBillRow(record: TradeBillRecord, billType: BillType = 'ALL'): string {
  const cols = BILL_COLUMNS[billType];
  let out = '';
  for (let i = 0; i < cols.length; i++) {
    const c = cols[i]!;
    out += (i === 0 ? BILL_FIELD_PREFIX : ',' + BILL_FIELD_PREFIX) + cell(record, c.field, c.kind);
  }
  return out;
}

/** The summary WeChat Pay would print for these rows (every detail row counted: see §6.3). */
export function summarizeTradeBill(rows: Iterable<TradeBillRecord>): TradeBillSummary {
  const s: TradeBillSummary = { total_count: 0, settlement_total_fee: 0, refund_fee: 0, coupon_refund_fee: 0, fee_milli_fen: 0, total_fee: 0, applied_refund_fee: 0 };
  for (const r of rows) addToSummary(s, r);
  return s;
}

/** Adds one row to a running summary (streaming generators). */
export function addToSummary(s: TradeBillSummary, r: TradeBillRecord): void {
  s.total_count += 1;
  s.settlement_total_fee += r.settlement_total_fee;
  s.refund_fee += r.refund_fee;
  s.coupon_refund_fee += r.coupon_refund_fee;
  s.fee_milli_fen += r.fee_milli_fen;
  s.total_fee += r.total_fee;
  s.applied_refund_fee += r.applied_refund_fee;
}

/** The summary header line + summary row, each followed by `eol`. */
export function formatTradeBillSummary(summary: TradeBillSummary, billType: BillType = 'ALL', eol: '\r\n' | '\n' = '\r\n'): string {
  const values = BILL_SUMMARY_COLUMNS[billType].map((c) => {
    const v = summary[c.field];
    return BILL_FIELD_PREFIX + (c.kind === 'count' ? String(v) : c.kind === 'fen' ? fenToYuan(v) : milliFenToYuan(v));
  });
  return billSummaryHeaderLine(billType) + eol + values.join(',') + eol;
}

/** BOM (optional) + detail header line + `eol`. */
export function formatTradeBillHeader(billType: BillType = 'ALL', eol: '\r\n' | '\n' = '\r\n', bom = false): string {
  return (bom ? '\uFEFF' : '') + billHeaderLine(billType) + eol;
}

/** A whole bill file as text (encode as UTF-8 to serve it). */
export function formatTradeBill(rows: TradeBillRecord[], opts: BillWriteOptions = {}): string {
  const type = opts.billType ?? 'ALL';
  const eol = opts.eol ?? '\r\n';
  const parts = [formatTradeBillHeader(type, eol, opts.bom ?? false)];
  for (const r of rows) parts.push(formatTradeBillRow(r, type), eol);
  parts.push(formatTradeBillSummary(opts.summary ?? summarizeTradeBill(rows), type, eol));
  return parts.join('');
}

/**
 * A record with the defaults of a merchant-mode Native payment row (refund ids `0`, refund
 * amounts 0, 特约商户号 `0`, fee 0.60% rounded to fen); give at least the identifying fields and the amount.
 */
export function paymentBillRecord(
  p: Pick<TradeBillRecord, 'trade_time' | 'appid' | 'mchid' | 'transaction_id' | 'out_trade_no' | 'total_fee'> & Partial<TradeBillRecord>,
): TradeBillRecord {
  return {
    sub_mchid: '0',
    device_info: '',
    openid: '',
    trade_type: 'NATIVE',
    trade_state: 'SUCCESS',
    bank_type: 'OTHERS',
    currency: 'CNY',
    settlement_total_fee: p.total_fee,
    coupon_fee: 0,
    refund_id: '0',
    out_refund_no: '0',
    refund_fee: 0,
    coupon_refund_fee: 0,
    refund_type: '',
    refund_status: '',
    description: '',
    attach: '',
    // 0.60% rounded half up to whole fen, as the reference sample shows (38.00 → 0.23000).
    fee_milli_fen: Math.floor((p.total_fee * 6 + 500) / 1000) * 1000,
    rate: '0.60%',
    applied_refund_fee: 0,
    rate_note: '',
    ...p,
  };
}
