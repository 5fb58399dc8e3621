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
  /** Extension (see UNCONFIRMED in reference §6.1): which sub-merchant's bill, when the caller may fetch it. */
  sub_mchid?: string;
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
