/**
 * One error hierarchy for everything the APIv3 client can fail at. Every error has a
 * stable `code` (machine-readable) and says whether retrying the same request can help.
 */
export class WechatPayError extends Error {
  readonly code: string;
  /** Same as classify(err).retryNow. */
  readonly retryable: boolean;
  /** What the failure means (see classify). */
  readonly kind: ErrorKind;
  constructor(code: string, message: string, opts: { retryable?: boolean; cause?: unknown; kind?: ErrorKind } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.kind = opts.kind ?? 'REFUSED';
  }
}

/**
 * What a failure means to the caller: the one classification of WeChat Pay's answers (and of
 * our own network/verification failures), used for retries (transport), follow-up (relay) and
 * reporting. Every other module asks `classify`; none compares code strings of its own.
 */
export type ErrorKind =
  | 'NETWORK'          // no answer (timeout, connection): WeChat Pay may have acted
  | 'SERVER'           // 5xx / SYSTEM_ERROR / BANK_ERROR: WeChat Pay may have acted
  | 'RATE_LIMITED'     // 429 / FREQUENCY_LIMITED
  | 'SIGNATURE_PROBE'  // WECHATPAY/SIGNTEST answer: the content is discarded, ask again
  | 'NOT_FOUND'        // ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS
  | 'ORDER_PAID'       // the order is paid (close refused)
  | 'ORDER_CLOSED'     // the order is already closed
  | 'USER_PAYING'      // the buyer is paying right now (202 on close): query again in seconds
  | 'NO_STATEMENT'     // NO_STATEMENT_EXIST: no bill for that day (no trades)
  | 'STATEMENT_NOT_READY' // STATEMENT_CREATING: the bill is being generated (~30 min)
  | 'REFUSED'          // anything else WeChat Pay or our checks refused: retrying will not help
  | 'INTERNAL';        // not a WeChat Pay client error at all (a bug here): outcome unknown

/**
 * WeChat Pay writes some codes with and without underscores across pages and versions
 * (`ORDERPAID`/`ORDER_PAID`, `SYSTEMERROR`/`SYSTEM_ERROR`, `USERPAYING`/`USER_PAYING`): codes
 * are compared in one canonical form (upper case, no underscores) instead of alias lists.
 */
export function canonicalCode(code: string): string {
  return code.toUpperCase().replace(/_/g, '');
}

const KIND_BY_CODE = new Map<string, ErrorKind>([
  ['SYSTEMERROR', 'SERVER'], ['SERVICEUNAVAILABLE', 'SERVER'], ['BANKERROR', 'SERVER'],
  ['FREQUENCYLIMITED', 'RATE_LIMITED'], ['RATELIMITEXCEEDED', 'RATE_LIMITED'], ['RATELIMITED', 'RATE_LIMITED'],
  ['ORDERNOTEXIST', 'NOT_FOUND'], ['RESOURCENOTEXISTS', 'NOT_FOUND'],
  ['ORDERPAID', 'ORDER_PAID'], ['ORDERCLOSED', 'ORDER_CLOSED'], ['USERPAYING', 'USER_PAYING'],
  ['NOSTATEMENTEXIST', 'NO_STATEMENT'], ['STATEMENTCREATING', 'STATEMENT_NOT_READY'],
].map(([c, k]) => [canonicalCode(c!), k as ErrorKind]));

/** Kind of a WeChat Pay answer by HTTP status and code. */
export function kindOfAnswer(status: number, code: string): ErrorKind {
  const byCode = KIND_BY_CODE.get(canonicalCode(code));
  if (byCode) return byCode;
  if (status === 429) return 'RATE_LIMITED';
  if (status >= 500) return 'SERVER';
  return 'REFUSED';
}

/** Retrying the identical request soon can help (bounded retries with backoff). */
const RETRY_NOW = new Set<ErrorKind>(['NETWORK', 'SERVER', 'RATE_LIMITED', 'SIGNATURE_PROBE']);
/** WeChat Pay may have acted although we got no usable answer: follow up by query. */
const AMBIGUOUS = new Set<ErrorKind>(['NETWORK', 'SERVER', 'INTERNAL']);

export interface Classification {
  kind: ErrorKind;
  /** Send the same request again after a short backoff. */
  retryNow: boolean;
  /** Try again much later (a bill still being generated). */
  retryLater: boolean;
  /** The outcome upstream is unknown: query before deciding. */
  ambiguous: boolean;
}

/** The one classification of a failure (anything not ours is an unknown failure: ambiguous). */
export function classify(err: unknown): Classification {
  let kind: ErrorKind;
  if (err instanceof WechatPayError) kind = err.kind;
  else return { kind: 'INTERNAL', retryNow: false, retryLater: false, ambiguous: true };
  return { kind, retryNow: RETRY_NOW.has(kind), retryLater: kind === 'STATEMENT_NOT_READY', ambiguous: AMBIGUOUS.has(kind) };
}

/** A non-2xx answer from WeChat Pay, with its status, `code`, `message` and `detail`. */
export class ApiError extends WechatPayError {
  readonly status: number;
  readonly detail: unknown;
  readonly requestId: string | undefined;
  constructor(status: number, code: string, message: string, detail?: unknown, requestId?: string) {
    const kind = kindOfAnswer(status, code);
    super(code, message, { retryable: RETRY_NOW.has(kind), kind });
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
  }
}

/** Network-level failures: no answer at all. Always retryable for idempotent calls. */
export class TransportError extends WechatPayError {
  constructor(code: 'TIMEOUT' | 'NETWORK_ERROR', message: string, cause?: unknown) {
    super(code, message, { retryable: true, cause, kind: 'NETWORK' });
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
    // WeChat Pay sends a few probes with a bogus signature on purpose (§2.2): the identical
    // request is asked again; any other verification failure is final.
    super(code, message, code === 'SIGNATURE_PROBE' ? { retryable: true, kind: 'SIGNATURE_PROBE' } : {});
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
