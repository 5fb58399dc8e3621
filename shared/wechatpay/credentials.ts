/**
 * The merchant credentials folder (contract §1, §1.1), read and validated once at start: the
 * initiator in the root, every participant with keys of its own in `merchants/<mchid>/`.
 * A bad folder fails with a ConfigError naming the merchant's folder, the file and the field.
 * Keys are parsed here, once; clients and verifiers reuse the KeyObjects.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from './errors';
import { apiV3Key } from './aead';
import { certificateSerial, loadPrivateKey, loadPublicKey } from './keys';

const catalogItem = z.object({
  sku: z.string().min(1),
  name: z.string().min(1),
  price: z.number().int().positive(),
});

const mchidField = z.string().regex(/^\d{1,32}$/, 'mchid must be digits');

const subMerchant = z.object({
  mchid: mchidField,
  name: z.string().min(1),
  /** Extension: goods sold at the counter (integer fen). */
  catalog: z.array(catalogItem).optional(),
});

/** What every merchant's own `merchant.json` carries (§1.1). */
const keysJson = z.object({
  mchid: mchidField,
  cert_serial: z.string().regex(/^[0-9A-Fa-f]{1,64}$/, 'cert_serial must be hex').optional(),
  apiv3_key: z.string().refine((k) => Buffer.byteLength(k, 'utf8') === 32, 'apiv3_key must be 32 bytes'),
  wechatpay_public_key_id: z.string().startsWith('PUB_KEY_ID_').optional(),
});

export const merchantJson = keysJson.extend({
  appid: z.string().min(1).max(32),
  sub_merchants: z.array(subMerchant).min(1),
});

/** A participant's `merchants/<mchid>/merchant.json`; an `appid` or other fields are tolerated. */
export const participantJson = keysJson.passthrough();

export type MerchantJson = z.infer<typeof merchantJson>;
export type SubMerchant = z.infer<typeof subMerchant>;
export type CatalogItem = z.infer<typeof catalogItem>;

/** One merchant's own keys: what signs its requests and verifies/decrypts what WeChat Pay sends it. */
export interface MerchantKeys {
  /** The folder the keys came from. */
  dir: string;
  mchid: string;
  certSerial: string;
  apiV3Key: KeyObject;
  privateKey: KeyObject;
  /** Public-key mode when present; otherwise platform-certificate mode (certificates downloaded). */
  wechatpayPublicKey?: { id: string; key: KeyObject };
}

/** The initiator's keys (root folder) plus the counter's settings and every participant's keys. */
export interface Credentials extends MerchantKeys {
  appid: string;
  subMerchants: SubMerchant[];
  /**
   * Keys of every participant that has them, by mchid: its `merchants/<mchid>/` folder, or the
   * root keys when the participant is the initiator itself. A participant missing here still
   * sells in combined orders; what needs its own keys is refused (MERCHANT_KEYS_MISSING).
   */
  participants: Map<string, MerchantKeys>;
}

export const PARTICIPANTS_DIR = 'merchants';

/** `prefix` is '' for the root and `merchants/<mchid>/` for a participant: errors name both. */
function read(dir: string, prefix: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch (err) {
    throw new ConfigError(prefix + file, `cannot read ${join(dir, file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function readJson<T>(dir: string, prefix: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(read(dir, prefix, 'merchant.json'));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${prefix}merchant.json`, `not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${prefix}merchant.json ${issue.path.join('.') || '(root)'}`, issue.message);
  }
  return parsed.data;
}

/** Reads one merchant's key files as described by its (already validated) merchant.json. */
function loadKeys(dir: string, prefix: string, m: z.infer<typeof keysJson>): MerchantKeys {
  const privateKey = loadPrivateKey(read(dir, prefix, 'apiclient_key.pem'), `${prefix}apiclient_key.pem`);
  let certSerial = m.cert_serial?.toUpperCase();
  if (!certSerial) {
    if (!existsSync(join(dir, 'apiclient_cert.pem'))) throw new ConfigError(`${prefix}merchant.json cert_serial`, 'required when apiclient_cert.pem is absent');
    try {
      certSerial = certificateSerial(read(dir, prefix, 'apiclient_cert.pem'));
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${prefix}apiclient_cert.pem`, `not a usable X.509 certificate: ${(err as Error).message}`);
    }
  }
  const pubPath = join(dir, 'wechatpay_public_key.pem');
  let wechatpayPublicKey: MerchantKeys['wechatpayPublicKey'];
  if (existsSync(pubPath)) {
    if (!m.wechatpay_public_key_id) throw new ConfigError(`${prefix}merchant.json wechatpay_public_key_id`, 'required with wechatpay_public_key.pem');
    wechatpayPublicKey = { id: m.wechatpay_public_key_id, key: loadPublicKey(read(dir, prefix, 'wechatpay_public_key.pem'), `${prefix}wechatpay_public_key.pem`) };
  } else if (m.wechatpay_public_key_id) {
    // An id without its key is a forgotten file, not a choice of certificate mode: a public-key
    // merchant has no platform certificates, so every answer would fail to verify at the first sale.
    throw new ConfigError(`${prefix}wechatpay_public_key.pem`, `missing in ${dir} although merchant.json names wechatpay_public_key_id ${m.wechatpay_public_key_id} (remove the id for platform-certificate mode)`);
  }
  return { dir, mchid: m.mchid, certSerial, apiV3Key: apiV3Key(m.apiv3_key), privateKey, wechatpayPublicKey };
}

/** `merchants/<mchid>/` folders; every name must be a participant of this counter. */
function loadParticipants(root: string, initiator: MerchantKeys, subs: SubMerchant[]): Map<string, MerchantKeys> {
  const out = new Map<string, MerchantKeys>();
  const known = new Set(subs.map((s) => s.mchid));
  // The initiator selling at its own counter signs with the root keys (§1.1).
  if (known.has(initiator.mchid)) out.set(initiator.mchid, initiator);
  const base = join(root, PARTICIPANTS_DIR);
  if (!existsSync(base)) return out; // the one-folder layout: no participant has keys here
  let names: string[];
  try {
    if (!statSync(base).isDirectory()) throw new Error('not a directory');
    names = readdirSync(base).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    throw new ConfigError(PARTICIPANTS_DIR, `cannot read ${base}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  for (const name of names) {
    const prefix = `${PARTICIPANTS_DIR}/${name}/`;
    const dir = join(base, name);
    if (!statSync(dir).isDirectory()) throw new ConfigError(`${PARTICIPANTS_DIR}/${name}`, 'expected a folder named after a participant mchid');
    if (!/^\d{1,32}$/.test(name)) throw new ConfigError(`${PARTICIPANTS_DIR}/${name}`, 'folder name must be the participant mchid (digits)');
    // Keys for a merchant that does not sell here are almost certainly a mistyped mchid.
    if (!known.has(name)) throw new ConfigError(`${PARTICIPANTS_DIR}/${name}`, `merchant ${name} is not in merchant.json sub_merchants`);
    // Two sets of keys for one merchant: no way to tell which one WeChat Pay holds.
    if (name === initiator.mchid) throw new ConfigError(`${PARTICIPANTS_DIR}/${name}`, `merchant ${name} is the initiator: it uses the root folder's keys; remove this folder`);
    const m = readJson(dir, prefix, participantJson);
    if (m.mchid !== name) throw new ConfigError(`${prefix}merchant.json mchid`, `is ${m.mchid}, but the folder is named ${name}`);
    out.set(name, loadKeys(dir, prefix, m));
  }
  return out;
}

export function loadCredentials(dir: string): Credentials {
  const m = readJson(dir, '', merchantJson);
  const seen = new Set<string>();
  for (const [i, s] of m.sub_merchants.entries()) {
    if (seen.has(s.mchid)) throw new ConfigError(`merchant.json sub_merchants.${i}.mchid`, `${s.mchid} appears twice`);
    seen.add(s.mchid);
  }
  const keys = loadKeys(dir, '', m);
  return { ...keys, appid: m.appid, subMerchants: m.sub_merchants, participants: loadParticipants(dir, keys, m.sub_merchants) };
}
