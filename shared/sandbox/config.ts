/**
 * DIR/sandbox/sandbox.json and the keys it names, read and parsed once at start.
 *
 * The WeChat Pay side of every merchant: the merchant's API certificate (verifies its requests),
 * its APIv3 key, and the keys WeChat Pay signs its answers with for that merchant (its own
 * WeChat Pay public key and/or platform certificates). The top-level fields describe the
 * initiator (combine_mchid) exactly as the single-merchant layout did (tools that read them keep
 * working); `participants` holds every other merchant that has keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { apiV3Key } from '../wechatpay/aead';
import { certificateSerial, loadPrivateKey, loadPublicKey } from '../wechatpay/keys';
import { SandboxError } from './errors';

const platformSchema = z.object({
  serial_no: z.string(),
  effective_time: z.string(),
  expire_time: z.string(),
  key_file: z.string(),
  cert_file: z.string(),
});

/** What WeChat Pay holds for one merchant. */
const merchantKeysSchema = z.object({
  mchid: z.string().regex(/^\d+$/),
  mode: z.enum(['public_key', 'certificates']),
  apiv3_key: z.string().length(32),
  merchant_cert_serial: z.string().regex(/^[0-9A-Fa-f]+$/),
  merchant_cert_file: z.string(),
  /** Present in public-key mode (and for the initiator in both modes: §2.5 migration answers). */
  public_key_id: z.string().startsWith('PUB_KEY_ID_').optional(),
  public_key_file: z.string().optional(),
  platform_certificates: z.array(platformSchema),
});

const configSchema = merchantKeysSchema.extend({
  /** Absent: the single-merchant layout of earlier versions (participants without keys). */
  version: z.literal(2).optional(),
  appid: z.string().min(1),
  sub_merchants: z.array(z.object({
    mchid: z.string(),
    name: z.string(),
    catalog: z.array(z.object({ sku: z.string(), name: z.string(), price: z.number().int() })).optional(),
  })).min(1),
  participants: z.array(merchantKeysSchema).optional(),
});

export type SandboxConfigFile = z.infer<typeof configSchema>;
export type MerchantKeysFile = z.infer<typeof merchantKeysSchema>;
export type KeyMode = MerchantKeysFile['mode'];

export interface SigningKey {
  serial: string;
  key: KeyObject;
}

export interface PlatformCertificate extends SigningKey {
  effectiveTime: string;
  expireTime: string;
  pem: string;
}

/** One merchant as WeChat Pay knows it, keys parsed. */
export interface MerchantKeys {
  mchid: string;
  mode: KeyMode;
  apiV3Key: KeyObject;
  /** Verifies the merchant's request signatures. */
  merchantPublicKey: KeyObject;
  merchantSerial: string;
  publicKey?: SigningKey;
  /** Oldest first; the last one is the newest and signs by default in certificate mode. */
  platform: PlatformCertificate[];
}

export interface SandboxConfig {
  file: SandboxConfigFile;
  sandboxDir: string;
  appid: string;
  /** The combine initiator (top-level fields of sandbox.json). */
  initiator: MerchantKeys;
  /** Every merchant WeChat Pay holds an API certificate for, the initiator included. */
  keys: Map<string, MerchantKeys>;
  /** Every merchant the sandbox knows (initiator and sub-merchants), with keys or not. */
  known: Set<string>;
  names: Map<string, string>;
}

function loadMerchant(sandboxDir: string, m: MerchantKeysFile, where: string): MerchantKeys {
  const read = (f: string) => {
    try {
      return readFileSync(join(sandboxDir, f), 'utf8');
    } catch (err) {
      throw new SandboxError('CONFIG_INVALID', `${where}: cannot read ${join(sandboxDir, f)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const merchantCert = read(m.merchant_cert_file);
  const merchantSerial = certificateSerial(merchantCert);
  if (merchantSerial !== m.merchant_cert_serial.toUpperCase()) {
    throw new SandboxError('CONFIG_INVALID', `${where}: merchant certificate serial ${merchantSerial} differs from merchant_cert_serial`);
  }
  if (m.mode === 'public_key' && (!m.public_key_id || !m.public_key_file)) {
    throw new SandboxError('CONFIG_INVALID', `${where}: public-key mode needs public_key_id and public_key_file`);
  }
  if (m.mode === 'certificates' && m.platform_certificates.length === 0) {
    throw new SandboxError('CONFIG_INVALID', `${where}: certificate mode needs platform_certificates`);
  }
  return {
    mchid: m.mchid,
    mode: m.mode,
    apiV3Key: apiV3Key(m.apiv3_key),
    merchantPublicKey: loadPublicKey(merchantCert, m.merchant_cert_file),
    merchantSerial,
    publicKey: m.public_key_id && m.public_key_file ? { serial: m.public_key_id, key: loadPrivateKey(read(m.public_key_file), m.public_key_file) } : undefined,
    platform: m.platform_certificates.map((c) => ({
      serial: c.serial_no.toUpperCase(),
      key: loadPrivateKey(read(c.key_file), c.key_file),
      effectiveTime: c.effective_time,
      expireTime: c.expire_time,
      pem: read(c.cert_file),
    })),
  };
}

export function loadSandboxConfig(sandboxDir: string): SandboxConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(sandboxDir, 'sandbox.json'), 'utf8'));
  } catch (err) {
    throw new SandboxError('NOT_INITIALIZED', `cannot read ${join(sandboxDir, 'sandbox.json')} (run "npm run sandbox -- init DIR" first): ${(err as Error).message}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SandboxError('CONFIG_INVALID', `sandbox.json ${issue.path.join('.')}: ${issue.message}`);
  }
  const file = parsed.data;
  const initiator = loadMerchant(sandboxDir, file, `sandbox.json (initiator ${file.mchid})`);
  const keys = new Map<string, MerchantKeys>([[initiator.mchid, initiator]]);
  // An old single-merchant folder has no participants: they stay known (they still sell in
  // combined orders) but WeChat Pay holds no API certificate for them here, so a request signed
  // as one of them is refused. A new `init` gives every participant keys.
  for (const [i, p] of (file.participants ?? []).entries()) {
    if (keys.has(p.mchid)) throw new SandboxError('CONFIG_INVALID', `sandbox.json participants.${i}: mchid ${p.mchid} appears twice`);
    keys.set(p.mchid, loadMerchant(sandboxDir, p, `sandbox.json participants.${i} (${p.mchid})`));
  }
  const known = new Set([file.mchid, ...file.sub_merchants.map((m) => m.mchid)]);
  for (const mchid of keys.keys()) {
    if (!known.has(mchid)) throw new SandboxError('CONFIG_INVALID', `sandbox.json: participant ${mchid} is not among sub_merchants`);
  }
  return {
    file,
    sandboxDir,
    appid: file.appid,
    initiator,
    keys,
    known,
    names: new Map(file.sub_merchants.map((m) => [m.mchid, m.name])),
  };
}
