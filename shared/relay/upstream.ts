/**
 * What the relay needs from the APIv3 client (shared/wechatpay WechatPayClient), as an
 * interface, and how client errors become contract errors (502 `UPSTREAM_<code>`).
 */
import type {
  RefundRequest, RefundResult,
  CombineCloseRequest, CombineNativeRequest, CombineNativeResponse, CombineOrderResult,
  NativeOrderResult, NativeRequest, NativeResponse, TradeBillRequest, TradeBillResponse,
} from '../wechatpay/models';
import type { TradeBillStream } from '../wechatpay/bill-parser';
import { classify, MerchantKeysMissingError, ValidationError, WechatPayError } from '../wechatpay/errors';
import type { MerchantClient, MerchantClients } from '../wechatpay/merchant-keys';
import type { ParsedNotification, ParseNotifyOptions, WechatPayNotification } from '../wechatpay/notification';
import { RelayError } from './errors';

/** One merchant's client: it signs as that merchant and verifies with that merchant's keys. */
export interface PayClient extends MerchantClient<ParsedNotification> {
  combineNative(req: CombineNativeRequest): Promise<CombineNativeResponse>;
  combineQuery(combineOutTradeNo: string): Promise<CombineOrderResult>;
  combineClose(combineOutTradeNo: string, req: CombineCloseRequest): Promise<void>;
  /** Refunds of this merchant's own sub-orders (it signs; refund.ts). */
  createRefund(req: RefundRequest): Promise<RefundResult>;
  queryRefund(outRefundNo: string): Promise<RefundResult>;
  /** Basic Native (a one-merchant sale), as this merchant: create, query, close. */
  createNative(req: NativeRequest): Promise<NativeResponse>;
  queryNative(outTradeNo: string): Promise<NativeOrderResult>;
  closeNative(outTradeNo: string): Promise<void>;
  applyTradeBill(req: TradeBillRequest): Promise<TradeBillResponse>;
  /** Download → gunzip → SHA1 check → parse, streaming. */
  downloadTradeBill(res: TradeBillResponse, opts?: { gzip?: boolean }): TradeBillStream;
  parseNotification(headers: Record<string, string | string[] | undefined>, rawBody: Buffer): Promise<ParsedNotification>;
  /** Every notification kind (payments of both kinds, refunds), same checks. */
  parseNotifyRequest(headers: Record<string, string | string[] | undefined>, rawBody: Buffer, opts?: ParseNotifyOptions): Promise<WechatPayNotification>;
}

/**
 * Every merchant's client, by mchid (contract §1.1): `initiator` for combine create, query and
 * close; `get(mchid)` for what a participant does as itself (its bill, its refunds), which
 * throws MerchantKeysMissingError → 409 MERCHANT_KEYS_MISSING for a merchant without keys.
 */
export type PayClients = MerchantClients<PayClient>;

export function errorCode(err: unknown): string {
  return err instanceof WechatPayError ? err.code.toUpperCase() : 'INTERNAL';
}

/** WeChat Pay does not know the order (errors.ts classify: NOT_FOUND). */
export const isNotFound = (err: unknown): boolean => classify(err).kind === 'NOT_FOUND';

/** A failure after which WeChat may still have acted (timeout, 5xx, a bug here): follow up by query. */
export const isAmbiguous = (err: unknown): boolean => classify(err).ambiguous;

export function upstreamError(err: unknown, extra: Record<string, unknown> = {}): RelayError {
  if (err instanceof RelayError) return err;
  if (err instanceof MerchantKeysMissingError) return merchantKeysMissing(err.mchid);
  if (err instanceof ValidationError) return new RelayError(400, 'INVALID_FIELD', err.message, { field: err.field, ...extra });
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return new RelayError(502, `UPSTREAM_${code}`, `WeChat Pay: ${message}`, { upstream_code: code, ...extra });
}

/** 409 MERCHANT_KEYS_MISSING naming the merchant (contract §1.1). */
export function merchantKeysMissing(mchid: string): RelayError {
  return new RelayError(409, 'MERCHANT_KEYS_MISSING', `merchant ${mchid} has no keys at this relay: add its folder merchants/${mchid}/ to the credentials folder`, { mchid });
}
