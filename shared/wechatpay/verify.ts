/**
 * Verification of WeChat Pay's signed responses and notifications. Both key modes:
 * a WeChat Pay public key (`PUB_KEY_ID_…`) and platform certificates, and both at once
 * during a migration: the key is picked by `Wechatpay-Serial`.
 */
import { createVerify, type KeyObject } from 'node:crypto';
import { AUTH_SCHEME, PROBE_PREFIX, unixSeconds } from './sign';
import { VerificationError } from './errors';

/** Where verification keys come from. `refresh` is called once on an unknown serial. */
export interface VerificationKeySource {
  get(serial: string): KeyObject | undefined;
  /** Fetch new keys (platform certificates); resolves true if anything may have changed. */
  refresh?(): Promise<boolean>;
}

/** Fixed public keys by id (public-key mode), looked up exactly. */
export class PublicKeySource implements VerificationKeySource {
  private readonly keys = new Map<string, KeyObject>();
  constructor(entries: Iterable<[string, KeyObject]> = []) {
    for (const [id, key] of entries) this.keys.set(id, key);
  }
  get(serial: string): KeyObject | undefined {
    return this.keys.get(serial);
  }
}

/** Several sources consulted in order (public key + certificates during a migration). */
export class CombinedKeySource implements VerificationKeySource {
  constructor(private readonly sources: VerificationKeySource[]) {}
  get(serial: string): KeyObject | undefined {
    for (const s of this.sources) {
      const k = s.get(serial);
      if (k) return k;
    }
    return undefined;
  }
  async refresh(): Promise<boolean> {
    let changed = false;
    for (const s of this.sources) if (s.refresh && (await s.refresh())) changed = true;
    return changed;
  }
}

export type HeaderBag = Record<string, string | string[] | undefined> | Headers;

/** `lower` is the name as node:http delivers it; `name` as WeChat Pay writes it. */
function header(h: HeaderBag, name: string, lower: string): string | undefined {
  if (typeof (h as Headers).get === 'function') return (h as Headers).get(name) ?? undefined;
  const bag = h as Record<string, string | string[] | undefined>;
  const v = bag[lower] ?? bag[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface VerifierOptions {
  keys: VerificationKeySource;
  /** Allowed clock difference in seconds. */
  maxSkewSeconds?: number;
  now?: () => number;
}

export interface VerifiedHeaders {
  timestamp: number;
  nonce: string;
  serial: string;
  signature: string;
}

export class Verifier {
  private readonly maxSkew: number;
  private readonly now: () => number;
  constructor(private readonly opts: VerifierOptions) {
    this.maxSkew = opts.maxSkewSeconds ?? 300;
    this.now = opts.now ?? Date.now;
  }

  /** Whether a key for this serial is known now (no refresh). */
  knows(serial: string): boolean {
    return this.opts.keys.get(serial) !== undefined;
  }

  /** Asks the key source for new keys (platform certificates; rate-limited by the source). */
  async refreshKeys(): Promise<boolean> {
    return this.opts.keys.refresh ? this.opts.keys.refresh() : false;
  }

  /**
   * Rejects with VerificationError unless the headers sign exactly these raw body bytes.
   * An unknown serial asks the key source to refresh once (platform certificates) first.
   */
  verify(headers: HeaderBag, body: Buffer | string): Promise<VerifiedHeaders> {
    let h: VerifiedHeaders;
    let key: KeyObject | undefined;
    try {
      h = this.checkHeaders(headers);
      key = this.opts.keys.get(h.serial);
      // The common case stays synchronous: no extra async frame per verified answer.
      if (key) return Promise.resolve(this.check(key, h, body));
    } catch (err) {
      return Promise.reject(err);
    }
    return this.verifyAfterRefresh(h, body);
  }

  /** Same checks without any refresh: for callers whose keys are all known (sandbox, tests). */
  verifySync(headers: HeaderBag, body: Buffer | string): VerifiedHeaders {
    const h = this.checkHeaders(headers);
    const key = this.opts.keys.get(h.serial);
    if (!key) throw new VerificationError('SERIAL_UNKNOWN', `no WeChat Pay key with serial ${h.serial}`);
    return this.check(key, h, body);
  }

  private async verifyAfterRefresh(h: VerifiedHeaders, body: Buffer | string): Promise<VerifiedHeaders> {
    if (this.opts.keys.refresh) await this.opts.keys.refresh();
    const key = this.opts.keys.get(h.serial);
    if (!key) throw new VerificationError('SERIAL_UNKNOWN', `no WeChat Pay key with serial ${h.serial}`);
    return this.check(key, h, body);
  }

  private check(key: KeyObject, h: VerifiedHeaders, body: Buffer | string): VerifiedHeaders {
    let ok = false;
    try {
      // The message is fed in parts: the body is hashed where it lies, never copied.
      ok = createVerify('RSA-SHA256').update(`${h.timestamp}\n${h.nonce}\n`).update(body).update('\n').verify(key, h.signature, 'base64');
    } catch {
      ok = false; // junk signatures and unusable keys are simply not valid
    }
    if (!ok) throw new VerificationError('SIGNATURE_INVALID', 'signature does not match the body');
    return h;
  }

  /** Header presence, probe and timestamp checks: cheap, done before any RSA work. */
  checkHeaders(headers: HeaderBag): VerifiedHeaders {
    const ts = header(headers, 'Wechatpay-Timestamp', 'wechatpay-timestamp');
    const nonce = header(headers, 'Wechatpay-Nonce', 'wechatpay-nonce');
    const signature = header(headers, 'Wechatpay-Signature', 'wechatpay-signature');
    const serial = header(headers, 'Wechatpay-Serial', 'wechatpay-serial');
    const type = header(headers, 'Wechatpay-Signature-Type', 'wechatpay-signature-type');
    if (!ts || !nonce || !signature || !serial) {
      const missing = [['Wechatpay-Timestamp', ts], ['Wechatpay-Nonce', nonce], ['Wechatpay-Signature', signature], ['Wechatpay-Serial', serial]]
        .filter(([, v]) => !v).map(([n]) => n).join(', ');
      throw new VerificationError('HEADER_MISSING', `missing ${missing}`);
    }
    // Absent type is taken as the default scheme (as the Go SDK does); any other value is refused.
    if (type !== undefined && type !== AUTH_SCHEME) {
      throw new VerificationError('SIGNATURE_TYPE_UNSUPPORTED', `unsupported Wechatpay-Signature-Type ${type}`);
    }
    // Probes carry a deliberately bogus signature: refuse before decoding it.
    if (signature.startsWith(PROBE_PREFIX)) throw new VerificationError('SIGNATURE_PROBE', 'signature probe (WECHATPAY/SIGNTEST) refused');
    if (!/^\d{1,12}$/.test(ts)) throw new VerificationError('TIMESTAMP_INVALID', `Wechatpay-Timestamp ${ts} is not Unix seconds`);
    const timestamp = Number(ts);
    // Safe reading of "±300 s": a difference of 300 s or more is refused (Go/Java reject at ≥ 300).
    if (Math.abs(unixSeconds(this.now()) - timestamp) >= this.maxSkew) {
      throw new VerificationError('TIMESTAMP_EXPIRED', `Wechatpay-Timestamp ${ts} is outside the ±${this.maxSkew}s window`);
    }
    return { timestamp, nonce, serial, signature };
  }
}
