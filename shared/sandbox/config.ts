/** DIR/sandbox/sandbox.json and the keys it names, read and parsed once at start. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { apiV3Key } from '../wechatpay/aead';
import { certificateSerial, loadPrivateKey, loadPublicKey } from '../wechatpay/keys';
import { SandboxError } from './errors';

const configSchema = z.object({
  mode: z.enum(['public_key', 'certificates']),
  mchid: z.string().regex(/^\d+$/),
  appid: z.string().min(1),
  apiv3_key: z.string().length(32),
  merchant_cert_serial: z.string().regex(/^[0-9A-Fa-f]+$/),
  merchant_cert_file: z.string(),
  public_key_id: z.string().startsWith('PUB_KEY_ID_'),
  public_key_file: z.string(),
  platform_certificates: z.array(z.object({
    serial_no: z.string(),
    effective_time: z.string(),
    expire_time: z.string(),
    key_file: z.string(),
    cert_file: z.string(),
  })).min(1),
  sub_merchants: z.array(z.object({
    mchid: z.string(),
    name: z.string(),
    catalog: z.array(z.object({ sku: z.string(), name: z.string(), price: z.number().int() })).optional(),
  })).min(1),
});

export type SandboxConfigFile = z.infer<typeof configSchema>;

export interface SigningKey {
  serial: string;
  key: KeyObject;
}

export interface PlatformCertificate extends SigningKey {
  effectiveTime: string;
  expireTime: string;
  pem: string;
}

export interface SandboxConfig {
  file: SandboxConfigFile;
  sandboxDir: string;
  apiV3Key: KeyObject;
  /** Verifies the merchant's request signatures. */
  merchantPublicKey: KeyObject;
  merchantSerial: string;
  publicKey: SigningKey;
  /** Oldest first; the last one is the newest and signs by default in certificate mode. */
  platform: PlatformCertificate[];
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
  const read = (f: string) => readFileSync(join(sandboxDir, f), 'utf8');
  const merchantCert = read(file.merchant_cert_file);
  const merchantSerial = certificateSerial(merchantCert);
  if (merchantSerial !== file.merchant_cert_serial.toUpperCase()) {
    throw new SandboxError('CONFIG_INVALID', `merchant certificate serial ${merchantSerial} differs from sandbox.json merchant_cert_serial`);
  }
  return {
    file,
    sandboxDir,
    apiV3Key: apiV3Key(file.apiv3_key),
    merchantPublicKey: loadPublicKey(merchantCert, file.merchant_cert_file),
    merchantSerial,
    publicKey: { serial: file.public_key_id, key: loadPrivateKey(read(file.public_key_file), file.public_key_file) },
    platform: file.platform_certificates.map((c) => ({
      serial: c.serial_no.toUpperCase(),
      key: loadPrivateKey(read(c.key_file), c.key_file),
      effectiveTime: c.effective_time,
      expireTime: c.expire_time,
      pem: read(c.cert_file),
    })),
  };
}
