/**
 * One error hierarchy for everything the APIv3 client can fail at. Every error has a
 * stable `code` (machine-readable) and says whether retrying the same request can help.
 */
export class WechatPayError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** Codes WeChat Pay documents as worth retrying with the same body (see reference §7). */
const RETRYABLE_CODES = new Set([
  'SYSTEM_ERROR', 'SYSTEMERROR', 'FREQUENCY_LIMITED', 'RATELIMIT_EXCEEDED', 'RATE_LIMITED',
  'SERVICE_UNAVAILABLE', 'STATEMENT_CREATING', 'BANKERROR', 'BANK_ERROR',
]);

/** A non-2xx answer from WeChat Pay, with its status, `code`, `message` and `detail`. */
export class ApiError extends WechatPayError {
  readonly status: number;
  readonly detail: unknown;
  readonly requestId: string | undefined;
  constructor(status: number, code: string, message: string, detail?: unknown, requestId?: string) {
    const upper = code.toUpperCase();
    super(code, message, { retryable: status >= 500 || status === 429 || RETRYABLE_CODES.has(upper) });
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
  }
}

/** Network-level failures: no answer at all. Always retryable for idempotent calls. */
export class TransportError extends WechatPayError {
  constructor(code: 'TIMEOUT' | 'NETWORK_ERROR', message: string, cause?: unknown) {
    super(code, message, { retryable: true, cause });
  }
}

export type VerificationCode =
  | 'HEADER_MISSING'
  | 'TIMESTAMP_INVALID'
  | 'TIMESTAMP_EXPIRED'
  | 'SIGNATURE_PROBE'
  | 'SERIAL_UNKNOWN'
  | 'SIGNATURE_TYPE_UNSUPPORTED'
  | 'SIGNATURE_INVALID';

/** A response or notification whose signature could not be verified: its content is never used. */
export class VerificationError extends WechatPayError {
  constructor(code: VerificationCode, message: string) {
    super(code, message);
  }
}

export type DecryptionCode = 'ALGORITHM_UNSUPPORTED' | 'DECRYPT_FAILED' | 'RESOURCE_MALFORMED';

export class DecryptionError extends WechatPayError {
  constructor(code: DecryptionCode, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

/** A notification that verified but whose envelope or payload is not what the protocol says. */
export type NotificationCode =
  | 'NOTIFICATION_MALFORMED'     // body is not a JSON notification envelope
  | 'EVENT_TYPE_UNSUPPORTED'     // event_type other than TRANSACTION.SUCCESS
  | 'RESOURCE_TYPE_UNSUPPORTED'  // resource_type / original_type not an encrypted transaction
  | 'RESOURCE_INVALID'           // decrypted, but not a combine order
  | 'MERCHANT_MISMATCH';         // signed and encrypted by one merchant, but about another

export class NotificationError extends WechatPayError {
  constructor(code: NotificationCode, message: string) {
    super(code, message);
  }
}

/**
 * What needs a participant's own keys (its bill, its refunds, a sale of its own) was asked for a
 * merchant without a `merchants/<mchid>/` folder. Nothing was sent.
 */
export class MerchantKeysMissingError extends WechatPayError {
  readonly mchid: string;
  constructor(mchid: string) {
    super('MERCHANT_KEYS_MISSING', `merchant ${mchid} has no keys here (add its folder merchants/${mchid}/ to the credentials folder)`);
    this.mchid = mchid;
  }
}

/** Input refused before anything was sent; `field` is a JSON pointer into the request. */
export class ValidationError extends WechatPayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('PARAM_INVALID', `${field}: ${message}`);
    this.field = field;
  }
}

export class BillError extends WechatPayError {
  constructor(code: 'HASH_MISMATCH' | 'BILL_MALFORMED' | 'HASH_TYPE_UNSUPPORTED', message: string) {
    super(code, message);
  }
}

export class ConfigError extends WechatPayError {
  readonly setting: string;
  constructor(setting: string, message: string) {
    super('CONFIG_INVALID', `${setting}: ${message}`);
    this.setting = setting;
  }
}

/** A 2xx answer that verified but is not what the endpoint promises (missing `code_url`…). */
export class ResponseError extends WechatPayError {
  constructor(message: string) {
    super('RESPONSE_MALFORMED', message);
  }
}

/** The platform certificate list could not be used. */
export class CertificateError extends WechatPayError {
  constructor(code: 'CERTIFICATES_MALFORMED' | 'CERTIFICATE_INVALID', message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
