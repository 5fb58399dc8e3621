/** Typed request and response models of the APIv3 endpoints the product uses (reference §4–6). */

export type TradeState = 'SUCCESS' | 'NOTPAY' | 'CLOSED' | 'REFUND' | 'USERPAYING' | 'PAYERROR' | 'REVOKED' | 'ACCEPT';

export interface CombineSubOrderRequest {
  mchid: string;
  /** ≤ 128 bytes; required by the spec */
  attach: string;
  amount: { total_amount: number; currency: 'CNY' };
  out_trade_no: string;
  /** ≤ 127 characters */
  description: string;
  goods_tag?: string;
  settle_info?: { profit_sharing?: boolean };
}

export interface CombineNativeRequest {
  combine_appid: string;
  combine_mchid: string;
  combine_out_trade_no: string;
  scene_info?: { device_id?: string; payer_client_ip: string };
  sub_orders: CombineSubOrderRequest[];
  /** `yyyy-MM-ddTHH:mm:ss+08:00` */
  time_expire?: string;
  notify_url: string;
}

export interface CombineNativeResponse {
  code_url: string;
}

export interface PromotionDetail {
  coupon_id: string;
  name?: string;
  scope?: string;
  type?: string;
  amount: number;
  stock_id?: string;
  wechatpay_contribute?: number;
  merchant_contribute?: number;
  other_contribute?: number;
  currency?: string;
}

export interface CombineSubOrderResult {
  mchid: string;
  trade_type?: string;
  trade_state: TradeState;
  bank_type?: string;
  attach?: string;
  success_time?: string;
  transaction_id?: string;
  out_trade_no: string;
  amount: {
    total_amount: number;
    currency?: string;
    payer_amount?: number;
    payer_currency?: string;
    settlement_rate?: number;
  };
  promotion_detail?: PromotionDetail[];
}

/** Query response and decrypted notification resource share this shape. */
export interface CombineOrderResult {
  combine_appid: string;
  combine_mchid: string;
  combine_out_trade_no: string;
  scene_info?: { device_id?: string };
  combine_payer_info?: { openid?: string };
  sub_orders: CombineSubOrderResult[];
}

export interface CombineCloseRequest {
  combine_appid: string;
  sub_orders: { mchid: string; out_trade_no: string }[];
}

export interface NotificationEnvelope {
  id: string;
  create_time: string;
  resource_type: string;
  event_type: string;
  summary?: string;
  resource: {
    original_type?: string;
    algorithm: string;
    ciphertext: string;
    associated_data?: string;
    nonce: string;
  };
}

export type BillType = 'ALL' | 'SUCCESS' | 'REFUND';

export interface TradeBillRequest {
  bill_date: string;
  bill_type?: BillType;
  tar_type?: 'GZIP';
}

export interface TradeBillResponse {
  hash_type: string;
  hash_value: string;
  download_url: string;
}

export interface PlatformCertificateEntry {
  serial_no: string;
  effective_time: string;
  expire_time: string;
  encrypt_certificate: {
    algorithm: string;
    nonce: string;
    associated_data: string;
    ciphertext: string;
  };
}

export interface ErrorResponseBody {
  code: string;
  message: string;
  detail?: { field?: string; value?: unknown; issue?: string; location?: string } | unknown;
}

/**
 * One detail row of a trade bill (reference §6.3). Amount columns are integer fen (parsed from
 * yuan strings with string arithmetic); the fee column has 5 decimals of yuan, so it is kept
 * exact in thousandths of a fen. Identifiers stay strings exactly as in the file (payment rows
 * carry `0` as refund ids). In a SUCCESS bill the refund columns are absent: '' / 0 here.
 */
export interface TradeBillRecord {
  /** 交易时间 `yyyy-MM-dd HH:mm:ss` (Beijing time) */
  trade_time: string;
  /** 公众账号ID */
  appid: string;
  /** 商户号 */
  mchid: string;
  /** 特约商户号 (`0` in merchant mode) */
  sub_mchid: string;
  /** 设备号 */
  device_info: string;
  /** 微信订单号 */
  transaction_id: string;
  /** 商户订单号 (the sub-order out_trade_no) */
  out_trade_no: string;
  /** 用户标识 */
  openid: string;
  /** 交易类型 */
  trade_type: string;
  /** 交易状态: SUCCESS, REFUND, … */
  trade_state: string;
  /** 付款银行 */
  bank_type: string;
  /** 货币种类 */
  currency: string;
  /** 应结订单金额, fen */
  settlement_total_fee: number;
  /** 代金券金额, fen */
  coupon_fee: number;
  /** 退款申请时间 (REFUND bills only) */
  refund_apply_time?: string;
  /** 退款成功时间 (REFUND bills only) */
  refund_success_time?: string;
  /** 微信退款单号 */
  refund_id: string;
  /** 商户退款单号 */
  out_refund_no: string;
  /** 退款金额, fen */
  refund_fee: number;
  /** 充值券退款金额, fen */
  coupon_refund_fee: number;
  /** 退款类型 */
  refund_type: string;
  /** 退款状态 */
  refund_status: string;
  /** 商品名称 */
  description: string;
  /** 商户数据包 (the sub-order attach) */
  attach: string;
  /** 手续费 in thousandths of a fen (the file has 5 decimals of yuan; negative on refunds) */
  fee_milli_fen: number;
  /** 费率, as written, e.g. `0.60%` */
  rate: string;
  /** 订单金额, fen */
  total_fee: number;
  /** 申请退款金额, fen */
  applied_refund_fee: number;
  /** 费率备注 */
  rate_note: string;
}

/** The summary row. Columns absent from a SUCCESS bill are 0. */
export interface TradeBillSummary {
  /** 总交易单数 */
  total_count: number;
  /** 应结订单总金额, fen */
  settlement_total_fee: number;
  /** 退款总金额, fen */
  refund_fee: number;
  /** 充值券退款总金额, fen */
  coupon_refund_fee: number;
  /** 手续费总金额, thousandths of a fen */
  fee_milli_fen: number;
  /** 订单总金额, fen */
  total_fee: number;
  /** 申请退款总金额, fen */
  applied_refund_fee: number;
}

// ─── Refunds and basic Native (addendum; refund.ts, native.ts, notification.ts) ───────────────

export type RefundStatus = 'SUCCESS' | 'CLOSED' | 'PROCESSING' | 'ABNORMAL';
export type RefundEventType = 'REFUND.SUCCESS' | 'REFUND.ABNORMAL' | 'REFUND.CLOSED';

/** `POST /v3/refund/domestic/refunds`: exactly one of `transaction_id` / `out_trade_no` (the sub-order's). */
export interface RefundRequest {
  transaction_id?: string;
  out_trade_no?: string;
  /** 1–64 of `[0-9A-Za-z_\-|*@]`, unique per merchant; the same number is the same refund. */
  out_refund_no: string;
  /** ≤ 80 characters, shown to the buyer. */
  reason?: string;
  /** ≤ 256; else the merchant's configured refund URL. */
  notify_url?: string;
  funds_account?: 'AVAILABLE';
  /** fen: `refund` ≤ `total`, `total` = the sub-order's total. */
  amount: { refund: number; total: number; currency: 'CNY' };
}

/** Create answer and query answer (same shape). Unknown fields are kept. */
export interface RefundResult {
  refund_id: string;
  out_refund_no: string;
  transaction_id: string;
  out_trade_no: string;
  /** ORIGINAL | BALANCE | OTHER_BALANCE | OTHER_BANKCARD */
  channel?: string;
  user_received_account?: string;
  success_time?: string;
  create_time?: string;
  status: RefundStatus;
  funds_account?: string;
  amount: {
    total: number;
    refund: number;
    from?: { account: string; amount: number }[];
    payer_total?: number;
    payer_refund?: number;
    settlement_refund?: number;
    settlement_total?: number;
    discount_refund?: number;
    currency?: string;
    refund_fee?: number;
  };
  promotion_detail?: unknown[];
}

/** Decrypted resource of a `REFUND.*` notification (`original_type` refund). */
export interface RefundNotificationResource {
  mchid: string;
  out_trade_no: string;
  transaction_id: string;
  out_refund_no: string;
  refund_id: string;
  refund_status: RefundStatus;
  success_time?: string;
  user_received_account?: string;
  amount: { total: number; refund: number; payer_total?: number; payer_refund?: number };
}

/** `POST /v3/pay/transactions/native` (one merchant). */
export interface NativeRequest {
  appid: string;
  mchid: string;
  /** ≤ 127 bytes of UTF-8 (safe reading of 127 characters). */
  description: string;
  /** 6–32 of `[0-9A-Za-z_\-*]`. */
  out_trade_no: string;
  /** `yyyy-MM-ddTHH:mm:ss+08:00` */
  time_expire?: string;
  /** ≤ 128 bytes */
  attach?: string;
  notify_url: string;
  goods_tag?: string;
  support_fapiao?: boolean;
  amount: { total: number; currency?: 'CNY' };
  scene_info?: { device_id?: string; payer_client_ip: string };
  settle_info?: { profit_sharing?: boolean };
}

export interface NativeResponse {
  code_url: string;
}

/** Basic order query answer and decrypted basic `TRANSACTION.SUCCESS` resource. */
export interface NativeOrderResult {
  appid?: string;
  mchid: string;
  out_trade_no: string;
  transaction_id?: string;
  trade_type?: string;
  trade_state: TradeState;
  trade_state_desc?: string;
  bank_type?: string;
  attach?: string;
  success_time?: string;
  payer?: { openid?: string };
  /** `total` is absent from some unpaid query answers; always there in a notification. */
  amount?: { total?: number; payer_total?: number; currency?: string; payer_currency?: string };
  scene_info?: { device_id?: string };
  promotion_detail?: PromotionDetail[];
}

// ─── end of refunds and basic Native ────────────────────────────────────────────────────────
