/**
 * APIv3 signatures, shared by the client (signs requests, verifies responses) and the sandbox
 * (verifies requests, signs responses and notifications). RSA PKCS#1 v1.5 with SHA-256.
 */
import { createSign, createVerify, randomFillSync, type KeyObject } from 'node:crypto';

export const AUTH_SCHEME = 'WECHATPAY2-SHA256-RSA2048';
export const PROBE_PREFIX = 'WECHATPAY/SIGNTEST/';

const NONCE_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// Random bytes are drawn from a pool refilled by the CSPRNG: one call per ~100 nonces instead
// of one per nonce (a per-call randomBytes cost showed up in the signing benchmark).
const pool = Buffer.alloc(4096);
let poolPos = pool.length;

/** 32 characters of [0-9A-Za-z] from crypto randomness (rejection sampling keeps it unbiased). */
export function createNonce(length = 32): string {
  let out = '';
  while (out.length < length) {
    if (poolPos >= pool.length) {
      randomFillSync(pool);
      poolPos = 0;
    }
    const b = pool[poolPos++]!;
    if (b < 248) out += NONCE_ALPHABET[b % 62];
  }
  return out;
}

export function unixSeconds(now: number = Date.now()): number {
  return Math.floor(now / 1000);
}

/** The request message: method, canonical URL (path + query as sent), timestamp, nonce, body. */
export function requestMessage(method: string, url: string, timestamp: number | string, nonce: string, body: string | Buffer = ''): Buffer {
  const head = `${method.toUpperCase()}\n${url}\n${timestamp}\n${nonce}\n`;
  if (typeof body === 'string') return Buffer.from(`${head}${body}\n`, 'utf8');
  return Buffer.concat([Buffer.from(head, 'utf8'), body, NEWLINE]);
}

const NEWLINE = Buffer.from('\n');

/** The response/notification message: timestamp, nonce, raw body bytes. */
export function responseMessage(timestamp: number | string, nonce: string, body: string | Buffer = ''): Buffer {
  const head = `${timestamp}\n${nonce}\n`;
  if (typeof body === 'string') return Buffer.from(`${head}${body}\n`, 'utf8');
  return Buffer.concat([Buffer.from(head, 'utf8'), body, NEWLINE]);
}

export function signMessage(privateKey: KeyObject, message: Buffer | string): string {
  return createSign('RSA-SHA256').update(message).sign(privateKey, 'base64');
}

/** False for anything that is not a valid signature, including probes and non-Base64 junk. */
export function verifyMessage(publicKey: KeyObject, message: Buffer | string, signature: string): boolean {
  if (signature.startsWith(PROBE_PREFIX)) return false;
  try {
    return createVerify('RSA-SHA256').update(message).verify(publicKey, signature, 'base64');
  } catch {
    return false;
  }
}

export interface AuthorizationFields {
  mchid: string;
  nonce_str: string;
  timestamp: string;
  serial_no: string;
  signature: string;
}

export function formatAuthorization(f: AuthorizationFields): string {
  return `${AUTH_SCHEME} mchid="${f.mchid}",nonce_str="${f.nonce_str}",timestamp="${f.timestamp}",serial_no="${f.serial_no}",signature="${f.signature}"`;
}

/** Parses an `Authorization` header; null when the scheme or any of the five fields is missing. */
export function parseAuthorization(header: string | undefined): AuthorizationFields | null {
  if (!header || !header.startsWith(AUTH_SCHEME + ' ')) return null;
  const fields: Record<string, string> = {};
  const re = /\s*([a-z_]+)="([^"]*)"\s*(,|$)/y;
  let pos = AUTH_SCHEME.length + 1;
  while (pos < header.length) {
    re.lastIndex = pos;
    const m = re.exec(header);
    if (!m) return null;
    if (m[1]! in fields) return null; // a repeated field is ambiguous: refuse
    fields[m[1]!] = m[2]!;
    pos = re.lastIndex;
    if (m[3] === '') break;
  }
  const { mchid, nonce_str, timestamp, serial_no, signature } = fields;
  if (!mchid || !nonce_str || !timestamp || !serial_no || !signature) return null;
  return { mchid, nonce_str, timestamp, serial_no, signature };
}

export interface SignerOptions {
  mchid: string;
  /** Merchant API certificate serial. */
  serialNo: string;
  /** Parsed once by the caller (see loadPrivateKey). */
  privateKey: KeyObject;
}

/** Signs requests for one merchant. The key is parsed once, outside. */
export class RequestSigner {
  constructor(private readonly opts: SignerOptions) {}

  get mchid(): string {
    return this.opts.mchid;
  }

  /** Returns the Authorization header for exactly these bytes. */
  authorization(method: string, url: string, body: string | Buffer = '', now: number = Date.now()): string {
    const timestamp = String(unixSeconds(now));
    const nonce = createNonce();
    const signature = signMessage(this.opts.privateKey, requestMessage(method, url, timestamp, nonce, body));
    return formatAuthorization({ mchid: this.opts.mchid, nonce_str: nonce, timestamp, serial_no: this.opts.serialNo, signature });
  }
}

// A type alias (not an interface) so it is assignable to plain header records (HeaderBag).
export type SignedHeaders = {
  'Wechatpay-Timestamp': string;
  'Wechatpay-Nonce': string;
  'Wechatpay-Signature': string;
  'Wechatpay-Serial': string;
  'Wechatpay-Signature-Type': string;
};

/** Signs a response or notification body as WeChat Pay does (used by the sandbox and tests). */
export function signBody(privateKey: KeyObject, serial: string, body: string | Buffer, now: number = Date.now()): SignedHeaders {
  const timestamp = String(unixSeconds(now));
  const nonce = createNonce();
  return {
    'Wechatpay-Timestamp': timestamp,
    'Wechatpay-Nonce': nonce,
    'Wechatpay-Signature': signMessage(privateKey, responseMessage(timestamp, nonce, body)),
    'Wechatpay-Serial': serial,
    'Wechatpay-Signature-Type': AUTH_SCHEME,
  };
}
