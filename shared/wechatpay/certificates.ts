/**
 * Platform certificates (legacy key mode, reference §2.4): downloaded from `GET /v3/certificates`,
 * decrypted with the APIv3 key (AAD "certificate"), cached by serial. Refreshed when an unknown
 * serial shows up (at most once per `minRefreshIntervalMs`) and periodically; every certificate
 * stays usable until its own expiry, so old and new both verify during a rotation.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { decryptResource } from './aead';
import { CertificateError, VerificationError, type VerificationCode } from './errors';
import { normalizeSerial } from './keys';
import type { PlatformCertificateEntry } from './models';
import { parseRfc3339 } from './time';
import { PublicKeySource, Verifier, type HeaderBag, type VerificationKeySource } from './verify';

export interface CertificateStoreOptions {
  apiV3Key: KeyObject;
  /** Performs the (signed) GET /v3/certificates; returns the 2xx raw answer, unverified. */
  download: () => Promise<{ headers: HeaderBag; body: Buffer }>;
  /** Unknown-serial refreshes at most this often; default 60 s. */
  minRefreshIntervalMs?: number;
  /** Periodic refresh; default 12 h (the docs ask for at least every 12 h). 0 = none. */
  refreshIntervalMs?: number;
  now?: () => number;
}

export interface PlatformCertificate {
  serial: string;
  publicKey: KeyObject;
  effective: number;
  expire: number;
}

export class PlatformCertificateStore implements VerificationKeySource {
  private certs = new Map<string, PlatformCertificate>();
  private lastRefresh = -Infinity;
  private inflight: Promise<boolean> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  /** How many downloads were made (observability and tests). */
  downloads = 0;

  constructor(private readonly opts: CertificateStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  get(serial: string): KeyObject | undefined {
    const c = this.certs.get(normalizeSerial(serial));
    // An expired certificate no longer vouches for anything.
    if (!c || c.expire <= this.now()) return undefined;
    return c.publicKey;
  }

  /** Serials currently usable, newest first. */
  serials(): string[] {
    const t = this.now();
    return [...this.certs.values()].filter((c) => c.expire > t).sort((a, b) => b.effective - a.effective).map((c) => c.serial);
  }

  /** The certificate in force now (latest effective, unexpired): sent as `Wechatpay-Serial`. */
  currentSerial(): string | undefined {
    const t = this.now();
    let best: PlatformCertificate | undefined;
    for (const c of this.certs.values()) if (c.effective <= t && c.expire > t && (!best || c.effective > best.effective)) best = c;
    return best?.serial;
  }

  /** Unknown-serial path: downloads unless one was made within `minRefreshIntervalMs`. */
  refresh(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    if (this.now() - this.lastRefresh < (this.opts.minRefreshIntervalMs ?? 60_000)) return Promise.resolve(false);
    return this.load();
  }

  /** Downloads now (start-up, periodic timer); concurrent callers share one download. */
  load(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    this.lastRefresh = this.now();
    this.downloads++;
    this.inflight = this.opts
      .download()
      .then(({ headers, body }) => this.ingest(headers, body))
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  /** Starts the periodic refresh; the timer never keeps the process alive. */
  start(): void {
    const every = this.opts.refreshIntervalMs ?? 12 * 3600_000;
    if (this.timer || every <= 0) return;
    this.timer = setInterval(() => {
      this.load().catch(() => {
        // Keep the certificates we have; the next tick or an unknown serial tries again.
      });
    }, every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Decrypts the list, then verifies the answer's signature with the keys it brought (plus
   * those already known): the AEAD tag proves the certificates came from whoever holds our
   * APIv3 key, the signature that the list itself was not swapped. Nothing is kept unless
   * both hold. Returns whether a new serial appeared.
   */
  async ingest(headers: HeaderBag, body: Buffer): Promise<boolean> {
    let list: { data?: unknown };
    try {
      list = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new CertificateError('CERTIFICATES_MALFORMED', `certificate list is not JSON: ${(err as Error).message}`);
    }
    if (!list || !Array.isArray(list.data)) throw new CertificateError('CERTIFICATES_MALFORMED', 'certificate list has no data array');
    const fresh = new Map<string, PlatformCertificate>();
    for (const [i, raw] of (list.data as PlatformCertificateEntry[]).entries()) {
      const c = this.decode(raw, i);
      fresh.set(c.serial, c);
    }
    const t = this.now();
    const merged = new Map<string, PlatformCertificate>();
    for (const [s, c] of this.certs) if (c.expire > t) merged.set(s, c);
    for (const [s, c] of fresh) if (c.expire > t) merged.set(s, c);
    const verifier = new Verifier({ keys: new PublicKeySource([...merged].map(([s, c]) => [s, c.publicKey] as [string, KeyObject])), now: this.now });
    try {
      await verifier.verify(normalizeSerialHeader(headers), body);
    } catch (err) {
      if (err instanceof VerificationError) throw new VerificationError(err.code as VerificationCode, `certificate list: ${err.message}`);
      throw err;
    }
    const added = [...fresh.keys()].some((s) => !this.certs.has(s));
    this.certs = merged;
    return added;
  }

  private decode(raw: PlatformCertificateEntry, i: number): PlatformCertificate {
    const where = `data[${i}]`;
    if (!raw || typeof raw.serial_no !== 'string' || !raw.encrypt_certificate) {
      throw new CertificateError('CERTIFICATES_MALFORMED', `${where} needs serial_no and encrypt_certificate`);
    }
    const effective = parseRfc3339(raw.effective_time ?? '');
    const expire = parseRfc3339(raw.expire_time ?? '');
    if (!effective || !expire) throw new CertificateError('CERTIFICATES_MALFORMED', `${where} has unparseable effective_time/expire_time`);
    const pem = decryptResource(raw.encrypt_certificate, this.opts.apiV3Key).toString('utf8');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      throw new CertificateError('CERTIFICATE_INVALID', `${where} does not decrypt to an X.509 certificate`, err);
    }
    const serial = normalizeSerial(raw.serial_no);
    // Serials are hex; compare as numbers so leading zeros and case do not matter (§2.1 rule 6).
    if (hexValue(cert.serialNumber) !== hexValue(serial)) {
      throw new CertificateError('CERTIFICATE_INVALID', `${where}: serial_no ${raw.serial_no} differs from the certificate's ${cert.serialNumber}`);
    }
    return { serial, publicKey: cert.publicKey, effective: effective.getTime(), expire: expire.getTime() };
  }
}

function hexValue(s: string): string {
  return s.toUpperCase().replace(/^0+(?=.)/, '');
}

/** Header bag with a case-normalized serial (hex serials are compared case-insensitively). */
function normalizeSerialHeader(h: HeaderBag): Record<string, string | undefined> {
  const get = (n: string): string | undefined => {
    if (typeof (h as Headers).get === 'function') return (h as Headers).get(n) ?? undefined;
    const bag = h as Record<string, string | string[] | undefined>;
    const v = bag[n.toLowerCase()] ?? bag[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const serial = get('Wechatpay-Serial');
  return {
    'wechatpay-timestamp': get('Wechatpay-Timestamp'),
    'wechatpay-nonce': get('Wechatpay-Nonce'),
    'wechatpay-signature': get('Wechatpay-Signature'),
    'wechatpay-serial': serial === undefined ? undefined : normalizeSerial(serial),
    'wechatpay-signature-type': get('Wechatpay-Signature-Type'),
  };
}
