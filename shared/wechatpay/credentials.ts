/**
 * The merchant credentials folder (contract §1), read and validated once at start.
 * A bad folder fails with a ConfigError naming the file and field.
 */
import { existsSync, readFileSync } from 'node:fs';
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

const subMerchant = z.object({
  mchid: z.string().regex(/^\d{1,32}$/, 'mchid must be digits'),
  name: z.string().min(1),
  /** Extension: goods sold at the counter (integer fen). */
  catalog: z.array(catalogItem).optional(),
});

export const merchantJson = z.object({
  mchid: z.string().regex(/^\d{1,32}$/, 'mchid must be digits'),
  appid: z.string().min(1).max(32),
  cert_serial: z.string().regex(/^[0-9A-Fa-f]{1,64}$/, 'cert_serial must be hex').optional(),
  apiv3_key: z.string().refine((k) => Buffer.byteLength(k, 'utf8') === 32, 'apiv3_key must be 32 bytes'),
  wechatpay_public_key_id: z.string().startsWith('PUB_KEY_ID_').optional(),
  sub_merchants: z.array(subMerchant).min(1),
});

export type MerchantJson = z.infer<typeof merchantJson>;
export type SubMerchant = z.infer<typeof subMerchant>;
export type CatalogItem = z.infer<typeof catalogItem>;

export interface Credentials {
  dir: string;
  mchid: string;
  appid: string;
  certSerial: string;
  apiV3Key: KeyObject;
  privateKey: KeyObject;
  /** Public-key mode when present; otherwise platform-certificate mode. */
  wechatpayPublicKey?: { id: string; key: KeyObject };
  subMerchants: SubMerchant[];
}

function read(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch (err) {
    throw new ConfigError(file, `cannot read ${join(dir, file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function loadCredentials(dir: string): Credentials {
  let raw: unknown;
  try {
    raw = JSON.parse(read(dir, 'merchant.json'));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('merchant.json', `not valid JSON: ${(err as Error).message}`);
  }
  const parsed = merchantJson.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`merchant.json ${issue.path.join('.') || '(root)'}`, issue.message);
  }
  const m = parsed.data;
  const privateKey = loadPrivateKey(read(dir, 'apiclient_key.pem'));
  let certSerial = m.cert_serial?.toUpperCase();
  if (!certSerial) {
    if (!existsSync(join(dir, 'apiclient_cert.pem'))) throw new ConfigError('merchant.json cert_serial', 'required when apiclient_cert.pem is absent');
    try {
      certSerial = certificateSerial(read(dir, 'apiclient_cert.pem'));
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError('apiclient_cert.pem', `not a usable X.509 certificate: ${(err as Error).message}`);
    }
  }
  const pubPath = join(dir, 'wechatpay_public_key.pem');
  let wechatpayPublicKey: Credentials['wechatpayPublicKey'];
  if (existsSync(pubPath)) {
    if (!m.wechatpay_public_key_id) throw new ConfigError('merchant.json wechatpay_public_key_id', 'required with wechatpay_public_key.pem');
    wechatpayPublicKey = { id: m.wechatpay_public_key_id, key: loadPublicKey(read(dir, 'wechatpay_public_key.pem')) };
  } else if (m.wechatpay_public_key_id) {
    // An id without its key is a forgotten file, not a choice of certificate mode: a public-key
    // merchant has no platform certificates, so every answer would fail to verify at the first sale.
    throw new ConfigError('wechatpay_public_key.pem', `missing in ${dir} although merchant.json names wechatpay_public_key_id ${m.wechatpay_public_key_id} (remove the id for platform-certificate mode)`);
  }
  return {
    dir,
    mchid: m.mchid,
    appid: m.appid,
    certSerial,
    apiV3Key: apiV3Key(m.apiv3_key),
    privateKey,
    wechatpayPublicKey,
    subMerchants: m.sub_merchants,
  };
}
