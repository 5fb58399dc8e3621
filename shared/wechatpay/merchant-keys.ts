/**
 * Every merchant signs for itself (contract §1.1): one APIv3 client per merchant with keys,
 * chosen by mchid, and the selection of the merchant whose keys verify and decrypt an incoming
 * notification, by its `Wechatpay-Serial`.
 */
import type { Credentials, MerchantKeys } from './credentials';
import { DecryptionError, MerchantKeysMissingError, NotificationError, VerificationError } from './errors';
import { normalizeSerial } from './keys';
import type { ParseNotifyOptions, WechatPayNotification } from './notification';
import type { HeaderBag } from './verify';

/** What the registry needs of a client (WechatPayClient has it all). */
export interface MerchantClient<N = unknown> {
  readonly mchid: string;
  /** Platform-certificate mode: an unknown serial may be a new certificate of this merchant. */
  readonly certificateMode: boolean;
  hasVerificationKey(serial: string): boolean;
  refreshVerificationKeys(): Promise<boolean>;
  /** Verify (raw bytes) → parse → decrypt with this merchant's APIv3 key (combine payments). */
  parseNotification(headers: HeaderBag, rawBody: Buffer): Promise<N>;
  /** The same for every notification kind (payments of both kinds, refunds): notification.ts. */
  parseNotifyRequest?(headers: HeaderBag, rawBody: Buffer, opts?: ParseNotifyOptions): Promise<WechatPayNotification>;
  close?(): void;
}

function headerValue(h: HeaderBag, name: string): string | undefined {
  if (typeof (h as Headers).get === 'function') return (h as Headers).get(name) ?? undefined;
  const bag = h as Record<string, string | string[] | undefined>;
  const v = bag[name.toLowerCase()] ?? bag[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The mchid a decrypted resource says it concerns: `combine_mchid` for a combine payment (the
 * initiator receives it), `mchid` for a basic Native payment or a refund (that merchant).
 */
export function concernedMchid(resource: unknown): string | undefined {
  const r = resource as { combine_mchid?: unknown; mchid?: unknown } | null;
  if (r && typeof r.combine_mchid === 'string') return r.combine_mchid;
  if (r && typeof r.mchid === 'string') return r.mchid;
  return undefined;
}

export class MerchantClients<C extends MerchantClient> {
  /** Every distinct client: the initiator first. */
  readonly all: readonly C[];

  /**
   * `clients` holds the initiator and each participant with keys (a participant that is the
   * initiator shares its client). `make` builds one client from one merchant's keys.
   */
  constructor(readonly initiator: C, private readonly byMchid: ReadonlyMap<string, C>) {
    this.all = [initiator, ...new Set([...byMchid.values()].filter((c) => c !== initiator))];
  }

  static fromCredentials<C extends MerchantClient>(creds: Credentials, make: (keys: MerchantKeys) => C): MerchantClients<C> {
    const initiator = make(creds);
    const map = new Map<string, C>();
    for (const [mchid, keys] of creds.participants) map.set(mchid, mchid === creds.mchid ? initiator : make(keys));
    return new MerchantClients(initiator, map);
  }

  /** Whether this participant has keys here. */
  has(mchid: string): boolean {
    return this.byMchid.has(mchid) || mchid === this.initiator.mchid;
  }

  /** The client that signs as `mchid`; MerchantKeysMissingError when it has no keys here. */
  get(mchid: string): C {
    if (mchid === this.initiator.mchid) return this.initiator;
    const c = this.byMchid.get(mchid);
    if (!c) throw new MerchantKeysMissingError(mchid);
    return c;
  }

  private holders(serial: string): C[] {
    return this.all.filter((c) => c.hasVerificationKey(serial));
  }

  /**
   * Verifies a notification with the key its `Wechatpay-Serial` names among all merchants' keys
   * (public keys by PUB_KEY_ID, platform certificates by serial) and decrypts it with the APIv3
   * key of the merchant holding that key. An unknown serial first refreshes the certificates of
   * every certificate-mode merchant (the notification does not say whose it is before it is
   * decrypted); each merchant's store downloads at most once a minute, so a flood of unknown
   * serials costs at most one download per merchant per minute.
   *
   * Should two merchants hold the same serial, each is tried: the AEAD tag only opens with the
   * APIv3 key of the merchant the notification was encrypted for.
   *
   * What is checked beyond the signature: the decrypted resource must name, as the merchant it
   * concerns (`combine_mchid`, else `mchid`), the very merchant whose key verified it and whose
   * APIv3 key decrypted it. A notification signed and encrypted for merchant A that claims to be
   * about merchant B is refused (MERCHANT_MISMATCH), never applied to B's orders. The caller then
   * checks the content against its own records (sub-orders, amounts), as for a single merchant.
   */
  parseNotification(headers: HeaderBag, rawBody: Buffer): Promise<{ mchid: string; parsed: Awaited<ReturnType<C['parseNotification']>> }> {
    return this.select(headers, (c) => c.parseNotification(headers, rawBody) as Promise<Awaited<ReturnType<C['parseNotification']>>>);
  }

  /**
   * Every notification kind (combine and basic payments, refunds: notification.ts's one
   * parse-and-dispatch), with the same key selection and the same merchant check (a refund or a
   * basic payment names its merchant in `mchid`).
   */
  parseNotifyRequest(headers: HeaderBag, rawBody: Buffer, opts?: ParseNotifyOptions): Promise<{ mchid: string; parsed: WechatPayNotification }> {
    return this.select(headers, (c) => {
      if (!c.parseNotifyRequest) throw new TypeError(`the client of ${c.mchid} cannot parse every notification kind`);
      return c.parseNotifyRequest(headers, rawBody, opts);
    });
  }

  private async select<P>(headers: HeaderBag, parse: (c: C) => Promise<P>): Promise<{ mchid: string; parsed: P }> {
    const raw = headerValue(headers, 'Wechatpay-Serial');
    // No serial: the initiator's verifier names the missing header(s) precisely.
    if (!raw) return { mchid: this.initiator.mchid, parsed: await parse(this.initiator) };
    const serial = normalizeSerial(raw);
    let candidates = this.holders(serial);
    if (candidates.length === 0) {
      await Promise.allSettled(this.all.filter((c) => c.certificateMode).map((c) => c.refreshVerificationKeys()));
      candidates = this.holders(serial);
    }
    if (candidates.length === 0) throw new VerificationError('SERIAL_UNKNOWN', `no merchant here holds a WeChat Pay key with serial ${raw}`);
    let last: unknown;
    for (const c of candidates) {
      let parsed: P;
      try {
        parsed = await parse(c);
      } catch (err) {
        if (err instanceof DecryptionError && err.code === 'DECRYPT_FAILED' && candidates.length > 1) {
          last = err;
          continue;
        }
        throw err;
      }
      const resource = (parsed as { resource?: unknown }).resource;
      const named = concernedMchid(resource);
      if (named !== c.mchid) {
        throw new NotificationError('MERCHANT_MISMATCH', `notification verified and decrypted with merchant ${c.mchid}'s keys names merchant ${named ?? '(none)'}`);
      }
      return { mchid: c.mchid, parsed };
    }
    throw last;
  }

  close(): void {
    for (const c of this.all) c.close?.();
  }
}
