/**
 * Checks a request's `Authorization` the way WeChat Pay does (reference §1) and picks the key
 * the response is signed with (§2.3–2.5). The crypto is the shared one in shared/wechatpay.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseAuthorization, requestMessage, unixSeconds, verifyMessage, AUTH_SCHEME } from '../wechatpay/sign';
import { normalizeSerial } from '../wechatpay/keys';
import { ApiFailure } from './errors';
import type { MerchantKeys, SandboxConfig, SigningKey } from './config';

/** Signature window on the REAL clock (the business clock never moves it). */
export const MAX_SKEW_SECONDS = 300;

const signError = (message: string) => new ApiFailure(401, 'SIGN_ERROR', message);

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The merchant whose keys answer a request: the one its Authorization names when WeChat Pay
 * holds keys for it (even if the signature then fails), else the initiator.
 */
export function answeringMerchant(cfg: SandboxConfig, headers: IncomingHttpHeaders): MerchantKeys {
  const auth = parseAuthorization(one(headers['authorization']));
  return (auth && cfg.keys.get(auth.mchid)) || cfg.initiator;
}

/**
 * Authenticates the request as the merchant named in its Authorization, with THAT merchant's API
 * certificate (serial and public key): a signature by another merchant's key fails like any
 * other wrong signature. Throws the error WeChat Pay would answer with. `url` is the request
 * target exactly as received (path + query), which is what the merchant must have signed.
 */
export function checkRequest(cfg: SandboxConfig, method: string, url: string, headers: IncomingHttpHeaders, body: Buffer, now = Date.now()): { mchid: string; merchant: MerchantKeys } {
  if (!one(headers['accept']) || !one(headers['user-agent'])) {
    throw new ApiFailure(400, 'INVALID_REQUEST', 'Http头缺少Accept或User-Agent');
  }
  const header = one(headers['authorization']);
  if (!header) throw signError('Http头Authorization值为空 (Authorization header is missing)');
  if (!header.startsWith(AUTH_SCHEME + ' ')) throw signError(`错误的签名认证方式 (Authorization scheme must be ${AUTH_SCHEME})`);
  const auth = parseAuthorization(header);
  if (!auth) throw signError('Http头Authorization格式错误 (need mchid, nonce_str, timestamp, serial_no, signature as key="value")');
  // Unknown mchid: WeChat Pay documents 400 MCH_NOT_EXISTS for a bad mchid; chosen over 401 because
  // it names the actual mistake (no key exists to check the signature against).
  if (!cfg.known.has(auth.mchid)) throw new ApiFailure(400, 'MCH_NOT_EXISTS', `商户号不存在 (mchid ${auth.mchid} is unknown)`);
  const merchant = cfg.keys.get(auth.mchid);
  // A participant of an old single-merchant sandbox folder (or 'none' in a mixed setup) has no API
  // certificate here: nothing can verify its signature.
  if (!merchant) throw signError(`商户API证书不存在 (no API certificate is registered for mchid ${auth.mchid} in this sandbox; run init again to give every participant keys)`);
  if (normalizeSerial(auth.serial_no) !== merchant.merchantSerial) {
    throw signError(`商户证书序列号有误 (serial_no ${auth.serial_no} is not the API certificate serial of mchid ${auth.mchid})`);
  }
  if (!/^\d{1,12}$/.test(auth.timestamp)) throw signError(`timestamp ${auth.timestamp} is not Unix seconds`);
  // Same window the SDKs use for responses; a difference of 300 s or more is refused (strict reading).
  if (Math.abs(unixSeconds(now) - Number(auth.timestamp)) >= MAX_SKEW_SECONDS) {
    throw signError(`timestamp ${auth.timestamp} is outside the ±${MAX_SKEW_SECONDS}s window (check the clock)`);
  }
  if (!verifyMessage(merchant.merchantPublicKey, requestMessage(method, url, auth.timestamp, auth.nonce_str, body), auth.signature)) {
    throw signError(`签名错误 (signature does not match method, URL, timestamp, nonce and body, checked with the API certificate of mchid ${auth.mchid})`);
  }
  return { mchid: auth.mchid, merchant };
}

/**
 * Key for a response to `m`. Public-key mode: its public key. Certificate mode: its newest
 * platform certificate, unless the request names another of its keys in `Wechatpay-Serial` (a
 * platform serial, or the public key id as during a migration, §2.5).
 */
export function responseKey(m: MerchantKeys, requestSerial: string | undefined): SigningKey {
  if (requestSerial) {
    if (m.publicKey && requestSerial === m.publicKey.serial) return m.publicKey;
    const named = m.platform.find((p) => p.serial === normalizeSerial(requestSerial));
    if (named && m.mode === 'certificates') return named;
  }
  return defaultKey(m);
}

/** Key for notifications concerning `m` (and responses without a preference). */
export function defaultKey(m: MerchantKeys): SigningKey {
  return m.mode === 'public_key' ? m.publicKey! : m.platform[m.platform.length - 1]!;
}
