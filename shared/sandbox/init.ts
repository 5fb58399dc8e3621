/**
 * `init DIR`: the merchant side (DIR/merchant, a contract §1 credentials folder) and the
 * simulator side (DIR/sandbox: WeChat Pay's keys, the merchant's certificate as WeChat Pay
 * holds it, and later the state file). Everything is generated fresh with node:crypto.
 */
import { generateKeyPairSync, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNonce } from '../wechatpay/sign';
import { formatBeijing } from '../wechatpay/time';
import { createCertificate } from './x509';
import { SandboxError } from './errors';
import type { SandboxConfigFile } from './config';

const DAY = 86_400_000;

function rsa(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** 40 upper-case hex digits whose first byte keeps the integer positive and the length fixed. */
function certSerial(): string {
  return (randomInt(0x10, 0x80).toString(16) + randomBytes(19).toString('hex')).toUpperCase();
}

function digits(n: number): string {
  let s = '';
  while (s.length < n) s += randomInt(0, 10);
  return s;
}

const pem = (k: KeyObject, type: 'pkcs8' | 'spki') => k.export({ type, format: 'pem' }) as string;

/** Goods of the demo counter: Chinese names, integer fen. */
const DEMO_SUB_MERCHANTS = [
  { name: '老王牛肉面', catalog: [['NM01', '红烧牛肉面', 2800], ['NM02', '炸酱面', 2200], ['NM03', '凉拌黄瓜', 800], ['NM04', '卤蛋', 300]] },
  { name: '甜心奶茶铺', catalog: [['TX01', '珍珠奶茶', 1500], ['TX02', '杨枝甘露', 1800], ['TX03', '柠檬茶', 1200]] },
  { name: '福记烧腊', catalog: [['FJ01', '叉烧饭', 2600], ['FJ02', '烧鸭饭', 2800], ['FJ03', '老火例汤', 500]] },
  { name: '晨光书报亭', catalog: [['CG01', '城市晚报', 200], ['CG02', '笔记本', 1250], ['CG03', '中性笔', 350]] },
] as const;

export interface InitOptions {
  /** Platform-certificate (legacy) mode instead of the WeChat Pay public key. */
  certificates?: boolean;
  /** Overwrite an existing DIR/sandbox (refused by default so no history is lost). */
  force?: boolean;
}

export async function initSandbox(dir: string, opts: InitOptions = {}): Promise<{ merchantDir: string; sandboxDir: string }> {
  const merchantDir = join(dir, 'merchant');
  const sandboxDir = join(dir, 'sandbox');
  // Refuse once anything worth keeping exists; a half-finished init (no merchant.json, no state)
  // is simply redone.
  if (!opts.force && (existsSync(join(merchantDir, 'merchant.json')) || existsSync(join(sandboxDir, 'state.json')))) {
    throw new SandboxError('ALREADY_INITIALIZED', `${dir} already holds a sandbox; refusing to overwrite its keys and history (use --force)`);
  }
  mkdirSync(merchantDir, { recursive: true });
  mkdirSync(sandboxDir, { recursive: true });

  const now = Date.now();
  const mchid = '19' + digits(8);
  const appid = 'wx' + randomBytes(8).toString('hex');
  const apiv3Key = createNonce(32);
  const subMerchants = DEMO_SUB_MERCHANTS.map((m, i) => ({
    mchid: '16' + digits(7) + String(i),
    name: m.name,
    catalog: m.catalog.map(([sku, name, price]) => ({ sku, name, price })),
  }));

  // Merchant API key and certificate; the certificate serial is what requests name in serial_no.
  const merchant = rsa();
  const merchantSerial = certSerial();
  const merchantCert = createCertificate({
    serial: merchantSerial,
    subject: [['C', 'CN'], ['O', '沙箱商户'], ['OU', mchid], ['CN', mchid]],
    issuer: [['C', 'CN'], ['O', 'Tenpay.com'], ['OU', 'Tenpay.com CA Center'], ['CN', 'Tenpay.com Root CA (sandbox)']],
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 5 * 365 * DAY),
    publicKey: merchant.publicKey,
    signingKey: merchant.privateKey,
  });

  // WeChat Pay public key (current mode) and two overlapping platform certificates (legacy).
  const wechat = rsa();
  const publicKeyId = 'PUB_KEY_ID_01' + mchid + digits(12);
  const platform = [
    // The older one: in use for a year, its expiry moved up as in a rotation.
    { notBefore: new Date(now - 365 * DAY), notAfter: new Date(now + 30 * DAY) },
    // The newer one: effective since yesterday, both valid during the overlap.
    { notBefore: new Date(now - DAY), notAfter: new Date(now + 5 * 365 * DAY) },
  ].map((v, i) => {
    const keys = rsa();
    const serial = certSerial();
    const cert = createCertificate({
      serial,
      subject: [['C', 'CN'], ['ST', '广东省'], ['L', '深圳市'], ['O', '财付通支付科技有限公司'], ['OU', '财付通支付科技有限公司'], ['CN', 'Tenpay.com sandbox']],
      notBefore: v.notBefore,
      notAfter: v.notAfter,
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
    });
    writeFileSync(join(sandboxDir, `platform_${i + 1}_key.pem`), pem(keys.privateKey, 'pkcs8'), { mode: 0o600 });
    writeFileSync(join(sandboxDir, `platform_${i + 1}_cert.pem`), cert);
    return { serial_no: serial, effective_time: formatBeijing(v.notBefore), expire_time: formatBeijing(v.notAfter), key_file: `platform_${i + 1}_key.pem`, cert_file: `platform_${i + 1}_cert.pem` };
  });

  writeFileSync(join(sandboxDir, 'wechatpay_private_key.pem'), pem(wechat.privateKey, 'pkcs8'), { mode: 0o600 });
  writeFileSync(join(sandboxDir, 'wechatpay_public_key.pem'), pem(wechat.publicKey, 'spki'));
  writeFileSync(join(sandboxDir, 'merchant_cert.pem'), merchantCert);
  const config: SandboxConfigFile = {
    mode: opts.certificates ? 'certificates' : 'public_key',
    mchid,
    appid,
    apiv3_key: apiv3Key,
    merchant_cert_serial: merchantSerial,
    merchant_cert_file: 'merchant_cert.pem',
    public_key_id: publicKeyId,
    public_key_file: 'wechatpay_private_key.pem',
    platform_certificates: platform,
    sub_merchants: subMerchants,
  };
  writeFileSync(join(sandboxDir, 'sandbox.json'), JSON.stringify(config, null, 2) + '\n');

  writeFileSync(join(merchantDir, 'apiclient_key.pem'), pem(merchant.privateKey, 'pkcs8'), { mode: 0o600 });
  writeFileSync(join(merchantDir, 'apiclient_cert.pem'), merchantCert);
  const merchantJson: Record<string, unknown> = { mchid, appid, cert_serial: merchantSerial, apiv3_key: apiv3Key };
  if (!opts.certificates) {
    merchantJson.wechatpay_public_key_id = publicKeyId;
    writeFileSync(join(merchantDir, 'wechatpay_public_key.pem'), pem(wechat.publicKey, 'spki'));
  } else {
    // A leftover public key would silently switch the merchant back to public-key mode.
    rmSync(join(merchantDir, 'wechatpay_public_key.pem'), { force: true });
  }
  merchantJson.sub_merchants = subMerchants;
  writeFileSync(join(merchantDir, 'merchant.json'), JSON.stringify(merchantJson, null, 2) + '\n', { mode: 0o600 });
  return { merchantDir, sandboxDir };
}
