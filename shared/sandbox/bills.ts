/**
 * Trade bills (reference §6): one file per mchid and Beijing day, generated from the paid
 * sub-orders, in the real layout (header, backtick-prefixed rows, summary). Apply answers with a
 * download URL, SHA1 of the uncompressed file, and the errors of §6.1; downloads expire.
 */
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { formatTradeBill, paymentBillRecord } from '../wechatpay/bill-writer';
import { beijingDate, formatBeijingBill, isCalendarDate } from '../wechatpay/time';
import type { TradeBillResponse } from '../wechatpay/models';
import { ApiFailure, paramError } from './errors';
import type { SandboxConfig } from './config';
import type { StateStore } from './state';
import type { Orders } from './orders';

const DAY = 86_400_000;
/** Bills of day D are ready at 10:00 Beijing on D+1 (generated after ~09:00, §6.1). */
const READY_HOUR_BEIJING = 10;
/** When the file is generated: refund states are frozen at this moment. */
const GENERATED_HOUR_BEIJING = 9;
/** Current docs say 5 min, older 30 s; 5 min here, on the business clock so tests can expire it. */
export const DOWNLOAD_VALIDITY_MS = 5 * 60_000;
export interface BillRow {
  time: number;
  /** A refund row (交易状态 REFUND), with the refund's state as frozen at generation. */
  refund?: { refund_id: string; out_refund_no: string; amount: number; status: string; success_at?: number };
  mchid: string;
  transaction_id: string;
  out_trade_no: string;
  openid: string;
  bank_type: string;
  amount: number;
  description: string;
  attach: string;
}

interface Download {
  /** The merchant that applied: only it may download. */
  mchid: string;
  text: Buffer;
  gzip: boolean;
  expires_at: number;
}

export class Bills {
  private readonly downloads = new Map<string, Download>();

  constructor(private readonly cfg: SandboxConfig, private readonly store: StateStore, private readonly orders: Orders) {}

  /** Rows of one mchid's bill for one Beijing day, adjustments applied. */
  rows(mchid: string, billDate: string): BillRow[] {
    const st = this.store.state;
    const adjust = new Map(st.bill_adjustments.map((a) => [a.out_trade_no, a]));
    const rows: BillRow[] = [];
    for (const o of Object.values(st.orders)) {
      if (o.state !== 'SUCCESS' || o.paid_at === undefined || beijingDate(o.paid_at) !== billDate) continue;
      o.request.sub_orders.forEach((s, i) => {
        if (s.mchid !== mchid) return;
        const a = adjust.get(s.out_trade_no);
        if (a?.drop) return;
        rows.push({
          time: o.paid_at!,
          mchid,
          transaction_id: o.sub_orders[i]!.transaction_id!,
          out_trade_no: s.out_trade_no,
          openid: o.payer_openid ?? '',
          bank_type: o.bank_type ?? 'OTHERS',
          amount: a?.amount ?? s.amount.total_amount,
          description: s.description,
          attach: s.attach,
        });
      });
    }
    // Refund rows: on the day the refund was initiated (交易时间 = initiation time), 退款状态 as
    // it stood when the bill was generated (09:00 Beijing the next day) and never updated.
    const generatedAt = Date.parse(`${billDate}T00:00:00+08:00`) + DAY + GENERATED_HOUR_BEIJING * 3600_000;
    for (const r of Object.values(st.refunds)) {
      if (r.mchid !== mchid || beijingDate(r.created_at) !== billDate) continue;
      const ref = this.orders.subOrder(r.mchid, r.out_trade_no);
      if (!ref) continue;
      const o = ref.order;
      const s = o.request.sub_orders[ref.index]!;
      const final = r.final_at !== undefined && r.final_at <= generatedAt;
      rows.push({
        time: r.created_at,
        mchid,
        transaction_id: r.transaction_id,
        out_trade_no: r.out_trade_no,
        openid: o.payer_openid ?? '',
        bank_type: o.bank_type ?? 'OTHERS',
        amount: 0,
        description: s.description,
        attach: s.attach,
        refund: { refund_id: r.refund_id, out_refund_no: r.out_refund_no, amount: r.refund, status: final ? r.status : 'PROCESSING', success_at: final ? r.success_at : undefined },
      });
    }
    for (const x of st.bill_extras) {
      if (x.mchid !== mchid || x.bill_date !== billDate) continue;
      rows.push({ time: x.time, mchid, transaction_id: x.transaction_id, out_trade_no: x.out_trade_no, openid: 'oSandboxExtraRow000000000000', bank_type: 'OTHERS', amount: x.amount, description: '补录交易', attach: x.attach ?? '' });
    }
    return rows.sort((a, b) => a.time - b.time || a.out_trade_no.localeCompare(b.out_trade_no));
  }

  /** The bill file text, written by the shared bill writer (UTF-8, `\r\n` line ends, no BOM). */
  text(rows: BillRow[], billType: 'ALL' | 'SUCCESS' | 'REFUND'): string {
    const records = rows.map((r) => {
      const common = {
        trade_time: formatBeijingBill(r.time),
        appid: this.cfg.appid,
        mchid: r.mchid,
        transaction_id: r.transaction_id,
        out_trade_no: r.out_trade_no,
        openid: r.openid,
        bank_type: r.bank_type,
        description: r.description,
        attach: r.attach,
      };
      if (r.refund) {
        // The reference sample's refund row: order amounts 0.00, the refund in 退款金额 and
        // 申请退款金额, the fee given back (negative).
        const fee = Math.floor((r.refund.amount * 6 + 500) / 1000) * 1000;
        return paymentBillRecord({
          ...common,
          total_fee: 0,
          trade_state: 'REFUND',
          refund_id: r.refund.refund_id,
          out_refund_no: r.refund.out_refund_no,
          refund_fee: r.refund.amount,
          applied_refund_fee: r.refund.amount,
          refund_type: 'ORIGINAL',
          refund_status: r.refund.status,
          refund_apply_time: formatBeijingBill(r.time),
          refund_success_time: r.refund.success_at === undefined ? '' : formatBeijingBill(r.refund.success_at),
          fee_milli_fen: -fee,
        });
      }
      return paymentBillRecord({ ...common, total_fee: r.amount });
    });
    return formatTradeBill(records, { billType });
  }

  /**
   * `GET /v3/bill/tradebill` for `signer`: validation, readiness, then a fresh download token for
   * its own bill, i.e. its own rows only (a participant's sub-orders; the initiator's only where it
   * is itself a participant).
   */
  apply(query: URLSearchParams, signer: string, baseUrl: string, now: number): TradeBillResponse {
    const billDate = query.get('bill_date');
    if (!billDate) throw paramError('bill_date', '字段缺失 (required, yyyy-MM-dd)');
    if (!isCalendarDate(billDate)) throw paramError('bill_date', '日期格式错误 (must be yyyy-MM-dd)', billDate);
    const billType = query.get('bill_type') ?? 'ALL';
    if (!['ALL', 'SUCCESS', 'REFUND'].includes(billType)) throw paramError('bill_type', '不支持的账单类型 (ALL, SUCCESS or REFUND)', billType);
    const tarType = query.get('tar_type');
    if (tarType !== null && tarType !== 'GZIP') throw paramError('tar_type', '仅支持GZIP (only GZIP)', tarType);
    // `sub_mchid` exists in partner (服务商) mode only; in merchant mode each participant applies
    // for its own bill signed with its own keys (addendum). What WeChat Pay answers a merchant that
    // sends it is UNCONFIRMED: ignoring it would hand the initiator its own bill where it asked for
    // a participant's, so the safe reading refuses it, naming the parameter.
    if (query.has('sub_mchid')) {
      throw paramError('sub_mchid', '普通商户模式不支持sub_mchid (merchant mode has no sub_mchid: each merchant applies for its own bill, signed with its own keys)', query.get('sub_mchid'));
    }
    const dayStart = Date.parse(`${billDate}T00:00:00+08:00`);
    if (dayStart < now - 92 * DAY) throw paramError('bill_date', '只能下载三个月以内的账单 (within the last 3 months)', billDate);
    if (now < dayStart + DAY + READY_HOUR_BEIJING * 3600_000) {
      if (dayStart > now) throw paramError('bill_date', '账单日期不能晚于今天 (date is in the future)', billDate);
      throw new ApiFailure(400, 'STATEMENT_CREATING', `账单生成中，请在${beijingDate(dayStart + DAY)} ${READY_HOUR_BEIJING}:00之后再试 (bill not ready yet)`);
    }
    // ALL: payments and refunds; SUCCESS: payments; REFUND: refunds.
    const all = this.rows(signer, billDate);
    const rows = billType === 'ALL' ? all : all.filter((r) => (billType === 'REFUND') === (r.refund !== undefined));
    if (rows.length === 0) throw new ApiFailure(400, 'NO_STATEMENT_EXIST', '请求的账单文件不存在 (no trades that day)');
    const text = Buffer.from(this.text(rows, billType as 'ALL' | 'SUCCESS' | 'REFUND'), 'utf8');
    const token = randomBytes(24).toString('base64url');
    this.purge(now);
    this.downloads.set(token, { mchid: signer, text, gzip: tarType === 'GZIP', expires_at: now + DOWNLOAD_VALIDITY_MS });
    return {
      hash_type: 'SHA1',
      hash_value: createHash('sha1').update(text).digest('hex'),
      download_url: `${baseUrl}/v3/billdownload/file?token=${token}`,
    };
  }

  /** `GET /v3/billdownload/file?token=`: the bytes (gzip when applied with tar_type=GZIP). */
  download(query: URLSearchParams, signer: string, now: number): { body: Buffer; gzip: boolean } {
    const token = query.get('token');
    const d = token ? this.downloads.get(token) : undefined;
    // Another merchant's link reads as unknown: a bill is its merchant's alone.
    if (!d || d.mchid !== signer) throw new ApiFailure(400, 'INVALID_REQUEST', '下载链接无效 (unknown download token)');
    // Expired link: the exact answer is UNCONFIRMED; 400 INVALID_REQUEST naming the cause.
    if (now > d.expires_at) throw new ApiFailure(400, 'INVALID_REQUEST', '下载链接已过期，请重新申请账单 (download_url expired)');
    return { body: d.gzip ? gzipSync(d.text) : d.text, gzip: d.gzip };
  }

  private purge(now: number): void {
    for (const [k, d] of this.downloads) if (now > d.expires_at + DAY) this.downloads.delete(k);
  }
}
