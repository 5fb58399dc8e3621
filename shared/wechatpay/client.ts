/**
 * The APIv3 client for combine Native payments: signs every request, verifies every answer
 * (public key, platform certificates, or both during a migration), validates input before
 * sending, and streams trade bills.
 */
import type { KeyObject } from 'node:crypto';
import { verifiedBillStream, checkBillApplyResponse, type TradeBillStream } from './bill';
import { PlatformCertificateStore } from './certificates';
import { buildCombineCloseBody, buildCombineNativeBody, parseCombineOrderResult, validateOrderNo } from './combine';
import type { MerchantKeys } from './credentials';
import { ApiError, ConfigError, ResponseError, ValidationError } from './errors';
import type { CombineCloseRequest, CombineNativeRequest, CombineNativeResponse, CombineOrderResult, TradeBillRecord, TradeBillRequest, TradeBillResponse, TradeBillSummary } from './models';
import { parseNotification, parseNotifyRequest, type ParseNotifyOptions, type ParsedNotification, type WechatPayNotification } from './notification';
import { closeNative, createNative, queryNative, queryNativeById } from './native';
import { createRefund, queryRefund } from './refund';
import type { NativeOrderResult, NativeRequest, NativeResponse, RefundRequest, RefundResult } from './models';
import { RequestSigner } from './sign';
import { Transport, type RawResponse } from './transport';
import { CombinedKeySource, PublicKeySource, Verifier, type HeaderBag, type VerificationKeySource } from './verify';

export const DEFAULT_BASE_URL = 'https://api.mch.weixin.qq.com';

export interface WechatPayClientOptions {
  mchid: string;
  /** Merchant API certificate serial. */
  certSerial: string;
  privateKey: KeyObject;
  apiV3Key: KeyObject;
  baseUrl?: string;
  backupBaseUrl?: string;
  /** Public-key mode (`PUB_KEY_ID_…`). */
  wechatpayPublicKey?: { id: string; key: KeyObject };
  /** Platform-certificate mode; default true when no public key is given. Both = migration. */
  platformCertificates?: boolean;
  timeoutMs?: number;
  maxRetries?: number;
  userAgent?: string;
  now?: () => number;
  /** Periodic certificate refresh; default 12 h. */
  certificateRefreshIntervalMs?: number;
  /** Unknown-serial certificate refreshes at most this often; default 60 s. */
  certificateMinRefreshIntervalMs?: number;
  /** Backoff base between retries; default 200 ms. */
  backoffBaseMs?: number;
}

export type ClientOverrides = Omit<WechatPayClientOptions, 'mchid' | 'certSerial' | 'privateKey' | 'apiV3Key' | 'wechatpayPublicKey'> & {
  wechatpayPublicKey?: WechatPayClientOptions['wechatpayPublicKey'];
};

const RE_DATE = /^\d{4}-\d{2}-\d{2}$/;

export class WechatPayClient {
  readonly mchid: string;
  readonly verifier: Verifier;
  readonly certificates: PlatformCertificateStore | null;
  private readonly transport: Transport;
  private readonly apiV3Key: KeyObject;

  static fromCredentials(creds: MerchantKeys, opts: ClientOverrides = {}): WechatPayClient {
    return new WechatPayClient({
      mchid: creds.mchid,
      certSerial: creds.certSerial,
      privateKey: creds.privateKey,
      apiV3Key: creds.apiV3Key,
      wechatpayPublicKey: creds.wechatpayPublicKey,
      ...opts,
    });
  }

  constructor(opts: WechatPayClientOptions) {
    if (!opts.mchid) throw new ConfigError('mchid', 'is required');
    if (!opts.certSerial) throw new ConfigError('certSerial', 'is required');
    this.mchid = opts.mchid;
    this.apiV3Key = opts.apiV3Key;
    const now = opts.now ?? Date.now;
    const useCerts = opts.platformCertificates ?? !opts.wechatpayPublicKey;
    const sources: VerificationKeySource[] = [];
    if (opts.wechatpayPublicKey) sources.push(new PublicKeySource([[opts.wechatpayPublicKey.id, opts.wechatpayPublicKey.key]]));
    let transport: Transport | undefined;
    this.certificates = useCerts
      ? new PlatformCertificateStore({
          apiV3Key: opts.apiV3Key,
          now,
          refreshIntervalMs: opts.certificateRefreshIntervalMs,
          minRefreshIntervalMs: opts.certificateMinRefreshIntervalMs,
          // The list is checked by its AEAD tags and then by its signature, inside the store.
          download: () => transport!.request({ method: 'GET', path: '/v3/certificates', idempotent: true, verifier: null }),
        })
      : null;
    if (this.certificates) sources.push(this.certificates);
    if (sources.length === 0) throw new ConfigError('wechatpayPublicKey', 'a WeChat Pay public key or platform certificates are needed to verify answers');
    const keys = sources.length === 1 ? sources[0]! : new CombinedKeySource(sources);
    this.verifier = new Verifier({ keys, now });
    const pubId = opts.wechatpayPublicKey?.id;
    transport = new Transport({
      signer: new RequestSigner({ mchid: opts.mchid, serialNo: opts.certSerial, privateKey: opts.privateKey }),
      verifier: this.verifier,
      baseUrl: opts.baseUrl ?? DEFAULT_BASE_URL,
      backupBaseUrl: opts.backupBaseUrl,
      timeoutMs: opts.timeoutMs,
      maxRetries: opts.maxRetries,
      userAgent: opts.userAgent,
      now,
      backoffBaseMs: opts.backoffBaseMs,
      // The public key id on every request (it also asks WeChat Pay to sign answers with that
      // key during a migration, §2.5); otherwise the platform certificate in force, if known.
      wechatpaySerial: () => pubId ?? this.certificates?.currentSerial(),
    });
    this.transport = transport;
    this.certificates?.start();
  }

  /** Platform-certificate mode (certificates downloaded and rotated for this merchant). */
  get certificateMode(): boolean {
    return this.certificates !== null;
  }

  /** Whether a key with this `Wechatpay-Serial` is known now (no download). */
  hasVerificationKey(serial: string): boolean {
    return this.verifier.knows(serial);
  }

  /** Unknown-serial path: refresh this merchant's certificates (rate-limited by the store). */
  refreshVerificationKeys(): Promise<boolean> {
    return this.verifier.refreshKeys();
  }

  /** Stops the certificate refresh timer (the timer is unref'd anyway). */
  close(): void {
    this.certificates?.stop();
  }

  /** Downloads the platform certificates now (optional: an unknown serial does it lazily). */
  async loadCertificates(): Promise<void> {
    if (!this.certificates) throw new ConfigError('platformCertificates', 'this client is not in platform-certificate mode');
    await this.certificates.load();
  }

  /** `POST /v3/combine-transactions/native` → `code_url`. Input is validated before sending. */
  async combineNative(req: CombineNativeRequest): Promise<CombineNativeResponse> {
    const body = buildCombineNativeBody(req);
    if (body.combine_mchid !== this.mchid) throw new ValidationError('/combine_mchid', `must be this client's mchid ${this.mchid}`);
    const res = await this.transport.request({ method: 'POST', path: '/v3/combine-transactions/native', body, idempotent: true });
    const j = json(res) as { code_url?: unknown };
    if (typeof j?.code_url !== 'string' || !j.code_url) throw new ResponseError('create answer has no code_url');
    return { code_url: j.code_url };
  }

  /** `GET /v3/combine-transactions/out-trade-no/{no}`. */
  async combineQuery(combineOutTradeNo: string): Promise<CombineOrderResult> {
    validateOrderNo('combine_out_trade_no', combineOutTradeNo);
    const res = await this.transport.request({ method: 'GET', path: `/v3/combine-transactions/out-trade-no/${encodeURIComponent(combineOutTradeNo)}`, idempotent: true });
    const r = parseCombineOrderResult(json(res));
    if (!r.ok) throw new ResponseError(`query answer is not a combine order: ${r.reason}`);
    return r.value;
  }

  /**
   * `POST …/{no}/close` with exactly the sub-orders of creation (see closeRequestFor).
   * 204 → done. An order already closed (400 ORDER_CLOSED, e.g. a retried close) counts as
   * closed (§4.3). 202 USERPAYING and every other refusal throw ApiError.
   */
  async combineClose(combineOutTradeNo: string, req: CombineCloseRequest): Promise<void> {
    const body = buildCombineCloseBody(combineOutTradeNo, req);
    try {
      const res = await this.transport.request({ method: 'POST', path: `/v3/combine-transactions/out-trade-no/${encodeURIComponent(combineOutTradeNo)}/close`, body, idempotent: true });
      if (res.status === 202) {
        const j = safeJson(res.body) as { code?: string; message?: string } | null;
        throw new ApiError(202, j?.code ?? 'USERPAYING', j?.message ?? 'the buyer is paying: query again in a few seconds', undefined, res.headers['request-id']);
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && err.kind === 'ORDER_CLOSED') return;
      throw err;
    }
  }

  /**
   * `GET /v3/bill/tradebill` → hash + download URL: this merchant's own bill. In merchant (直连)
   * mode there is no `sub_mchid`: every participant applies for its bill with its own keys.
   */
  async applyTradeBill(req: TradeBillRequest): Promise<TradeBillResponse> {
    if (!req || typeof req.bill_date !== 'string' || !RE_DATE.test(req.bill_date)) throw new ValidationError('/bill_date', 'must be yyyy-MM-dd');
    const q = new URLSearchParams({ bill_date: req.bill_date });
    if (req.bill_type !== undefined) {
      if (!['ALL', 'SUCCESS', 'REFUND'].includes(req.bill_type)) throw new ValidationError('/bill_type', 'must be ALL, SUCCESS or REFUND');
      q.set('bill_type', req.bill_type);
    }
    if (req.tar_type !== undefined) {
      if (req.tar_type !== 'GZIP') throw new ValidationError('/tar_type', 'must be GZIP when given');
      q.set('tar_type', 'GZIP');
    }
    const res = await this.transport.request({ method: 'GET', path: `/v3/bill/tradebill?${q.toString()}`, idempotent: true });
    const j = json(res) as TradeBillResponse;
    try {
      checkBillApplyResponse(j);
    } catch (err) {
      throw new ResponseError(`tradebill answer: ${(err as Error).message}`);
    }
    return { hash_type: j.hash_type, hash_value: j.hash_value, download_url: j.download_url };
  }

  /**
   * Streams the bill behind `res.download_url`: records as they arrive, then `summary()`.
   * Records are provisional until iteration ends without error (hash checked at the end).
   * `gzip`: default = detected from the first bytes.
   */
  downloadTradeBill(res: TradeBillResponse, opts: { gzip?: boolean } = {}): TradeBillStream {
    checkBillApplyResponse(res);
    const path = downloadPath(res.download_url);
    return verifiedBillStream(this.transport.streamChunks(path), res, opts);
  }

  /** Apply + download + parse; resolves only once the whole bill has been checked. */
  async fetchTradeBill(req: TradeBillRequest): Promise<{ records: TradeBillRecord[]; summary: TradeBillSummary }> {
    const applied = await this.applyTradeBill(req);
    const stream = this.downloadTradeBill(applied, { gzip: req.tar_type === 'GZIP' ? true : undefined });
    const records: TradeBillRecord[] = [];
    for await (const r of stream) records.push(r);
    return { records, summary: await stream.summary() };
  }

  /** Verify → parse → decrypt a notification; throws VerificationError/NotificationError/DecryptionError. */
  parseNotification(headers: HeaderBag, rawBody: Buffer | string): Promise<ParsedNotification> {
    return parseNotification(this.verifier, this.apiV3Key, headers, rawBody);
  }

  // Refunds and basic Native (refund.ts, native.ts): this merchant signs, its key verifies.

  /** `POST /v3/refund/domestic/refunds` as this merchant (the sub-order's own). */
  createRefund(req: RefundRequest): Promise<RefundResult> {
    return createRefund(this.transport, req);
  }

  /** `GET /v3/refund/domestic/refunds/{out_refund_no}`. */
  queryRefund(outRefundNo: string): Promise<RefundResult> {
    return queryRefund(this.transport, outRefundNo);
  }

  /** `POST /v3/pay/transactions/native` → `code_url`; `req.mchid` must be this client's. */
  async createNative(req: NativeRequest): Promise<NativeResponse> {
    if (req && typeof req === 'object' && req.mchid !== this.mchid) throw new ValidationError('/mchid', `must be this client's mchid ${this.mchid}`);
    return createNative(this.transport, req);
  }

  /** `GET /v3/pay/transactions/out-trade-no/{no}?mchid=<this merchant>`. */
  queryNative(outTradeNo: string): Promise<NativeOrderResult> {
    return queryNative(this.transport, this.mchid, outTradeNo);
  }

  /** `GET /v3/pay/transactions/id/{transaction_id}?mchid=<this merchant>`. */
  queryNativeById(transactionId: string): Promise<NativeOrderResult> {
    return queryNativeById(this.transport, this.mchid, transactionId);
  }

  /** `POST …/out-trade-no/{no}/close {mchid}` → 204 (already closed resolves too). */
  closeNative(outTradeNo: string): Promise<void> {
    return closeNative(this.transport, this.mchid, outTradeNo);
  }

  /** Every notification kind (combine, basic, refund) through the one path, with this merchant's keys. */
  parseNotifyRequest(headers: HeaderBag, rawBody: Buffer | string, opts?: ParseNotifyOptions): Promise<WechatPayNotification> {
    return parseNotifyRequest({ verifier: this.verifier, apiV3Key: this.apiV3Key }, headers, rawBody, opts);
  }
}

/**
 * The download goes to our configured host with the path and query of `download_url`: the
 * signed request never leaves for a host we were not configured with (the host is not signed,
 * §9), and the sandbox / backup host work the same way.
 */
function downloadPath(downloadUrl: string): string {
  let u: URL;
  try {
    u = new URL(downloadUrl);
  } catch {
    throw new ResponseError(`download_url is not a URL: ${JSON.stringify(downloadUrl)}`);
  }
  return u.pathname + u.search;
}

function safeJson(b: Buffer): unknown {
  try {
    return b.length ? JSON.parse(b.toString('utf8')) : null;
  } catch {
    return null;
  }
}

function json(res: RawResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new ResponseError(`answer (HTTP ${res.status}) is not JSON`);
  }
}
