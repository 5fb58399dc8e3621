/**
 * Field checks shared by every request builder (combine, basic Native, refunds): each refusal
 * is a ValidationError naming the field as a JSON pointer, raised before anything is sent.
 */
import { isIP } from 'node:net';
import { ValidationError } from './errors';
import { formatBeijing } from './time';

/** Order numbers: 6–32 of [0-9A-Za-z_-] (contract; `|`, `*`, `@` would be URL-encoded in signed paths). */
export const ORDER_NO = /^[0-9A-Za-z_-]{6,32}$/;
export const MCHID = /^\d{1,32}$/;
/** WeChat Pay accepts only 1–3 byte UTF-8 characters (§1.3): no emoji. */
const FOUR_BYTE = /[\u{10000}-\u{10FFFF}]/u;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const chars = (s: string) => [...s].length;

export interface TextRule {
  required?: boolean;
  minChars?: number;
  maxChars?: number;
  maxBytes?: number;
}

/** A string field: type, emptiness, 4-byte characters, control characters, length limits. */
export function validateText(field: string, v: unknown, rule: TextRule): string | undefined {
  if (v === undefined || v === null) {
    if (rule.required) throw new ValidationError(field, 'is required');
    return undefined;
  }
  if (typeof v !== 'string') throw new ValidationError(field, `must be a string, got ${typeof v}`);
  if (rule.required && v.length === 0) throw new ValidationError(field, 'must not be empty');
  if (FOUR_BYTE.test(v)) throw new ValidationError(field, 'contains a 4-byte UTF-8 character (emoji…), which WeChat Pay refuses');
  if (/[\u0000-\u001f]/.test(v)) throw new ValidationError(field, 'contains a control character');
  if (rule.minChars !== undefined && chars(v) < rule.minChars) throw new ValidationError(field, `must be at least ${rule.minChars} characters`);
  if (rule.maxChars !== undefined && chars(v) > rule.maxChars) throw new ValidationError(field, `must be at most ${rule.maxChars} characters, got ${chars(v)}`);
  if (rule.maxBytes !== undefined && bytes(v) > rule.maxBytes) throw new ValidationError(field, `must be at most ${rule.maxBytes} bytes of UTF-8, got ${bytes(v)}`);
  return v;
}

/** A required string matching `re`; `what` describes the rule in the error. */
export function validatePattern(field: string, v: unknown, re: RegExp, what: string): string {
  if (typeof v !== 'string') throw new ValidationError(field, `is required (${what})`);
  if (!re.test(v)) throw new ValidationError(field, `must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

export function validateOrderNo(field: string, v: unknown): string {
  return validatePattern(field, v, ORDER_NO, '6–32 characters of [0-9A-Za-z_-]');
}

export function validateMchid(field: string, v: unknown): string {
  return validatePattern(field, v, MCHID, '1–32 digits');
}

/** `yyyy-MM-ddTHH:mm:ss+08:00` naming a real instant. */
export function validateTimeExpire(field: string, v: unknown): string {
  if (typeof v !== 'string') throw new ValidationError(field, 'must be a string');
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/.test(v)) throw new ValidationError(field, `must be yyyy-MM-ddTHH:mm:ss+08:00, got ${JSON.stringify(v)}`);
  const t = Date.parse(v);
  // Round-trip: refuses 2025-02-30 and the like, which Date would silently roll over.
  if (Number.isNaN(t) || formatBeijing(t) !== v) throw new ValidationError(field, `is not a valid time: ${v}`);
  return v;
}

/**
 * Order description. The pages say 127 characters; whether WeChat Pay counts characters or
 * UTF-8 bytes is not settled (string(127) elsewhere means bytes). Safe reading: 127 bytes.
 */
export const DESCRIPTION_MAX_BYTES = 127;
export function validateDescription(field: string, v: unknown): string {
  return validateText(field, v, { required: true, maxBytes: DESCRIPTION_MAX_BYTES })!;
}

/** `attach`: opaque merchant data, ≤ 128 bytes (the byte reading, as for the description). */
export const ATTACH_MAX_BYTES = 128;
export function validateAttach(field: string, v: unknown, required: boolean): string | undefined {
  return validateText(field, v, { required, maxBytes: ATTACH_MAX_BYTES });
}

/** A positive safe-integer amount of fen, optionally capped. */
export function validateFen(field: string, v: unknown, max?: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ValidationError(field, `must be a positive integer number of fen, got ${JSON.stringify(v)}`);
  }
  if (max !== undefined && v > max) throw new ValidationError(field, `exceeds the cap of ${max} fen`);
  return v;
}

export function validateCurrency(field: string, v: unknown): 'CNY' {
  if (v !== 'CNY') throw new ValidationError(field, `must be CNY, got ${JSON.stringify(v)}`);
  return 'CNY';
}

/**
 * `notify_url`: absolute http(s) URL without query string or fragment. The length limit differs
 * by endpoint (255 for payments, 256 for refunds).
 */
export function validateNotifyUrl(field: string, v: unknown, opts: { required: boolean; maxChars: number }): string | undefined {
  const s = validateText(field, v, { required: opts.required, maxChars: opts.maxChars });
  if (s === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ValidationError(field, `must be an absolute URL, got ${JSON.stringify(s)}`);
  }
  // HTTPS in production; plain HTTP is tolerated (private lines, the local sandbox).
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ValidationError(field, 'must be an http(s) URL');
  if (u.search || s.includes('?')) throw new ValidationError(field, 'must not carry a query string');
  if (u.hash || s.includes('#')) throw new ValidationError(field, 'must not carry a fragment');
  return s;
}

/**
 * `scene_info` `{payer_client_ip, device_id?}`: the IP is required once scene_info is sent.
 * `device_id` is string(16) with no minimum (addendum; the official example is "POS1:1").
 */
export function validateSceneInfo(v: unknown): { device_id?: string; payer_client_ip: string } | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') throw new ValidationError('/scene_info', 'must be an object');
  const s = v as { device_id?: unknown; payer_client_ip?: unknown };
  const payer_client_ip = validateText('/scene_info/payer_client_ip', s.payer_client_ip, { required: true, maxBytes: 45 })!;
  if (!isIP(payer_client_ip)) throw new ValidationError('/scene_info/payer_client_ip', `must be an IPv4 or IPv6 address, got ${JSON.stringify(payer_client_ip)}`);
  const device_id = validateText('/scene_info/device_id', s.device_id, { maxBytes: 16 });
  return device_id === undefined ? { payer_client_ip } : { device_id, payer_client_ip };
}

/** `settle_info {profit_sharing?}`; undefined when absent. */
export function validateSettleInfo(field: string, v: unknown): { profit_sharing?: boolean } | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') throw new ValidationError(field, 'must be an object');
  const ps = (v as { profit_sharing?: unknown }).profit_sharing;
  if (ps !== undefined && typeof ps !== 'boolean') throw new ValidationError(`${field}/profit_sharing`, 'must be a boolean');
  return ps === undefined ? {} : { profit_sharing: ps };
}

export function validateObject(field: string, v: unknown): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ValidationError(field, field === '/' ? 'request must be an object' : 'must be an object');
  return v as Record<string, unknown>;
}
