/**
 * `init DIR`: the merchant side (DIR/merchant, a contract §1 credentials folder with one
 * `merchants/<mchid>/` folder per participant, §1.1) and the simulator side (DIR/sandbox: for
 * every merchant, WeChat Pay's keys for it and the merchant's API certificate as WeChat Pay holds
 * it; later the state database). Everything is generated fresh with node:crypto.
 */
import { generateKeyPair, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createNonce } from '../wechatpay/sign';
import { formatBeijing } from '../wechatpay/time';
import { createCertificate } from './x509';
import { SandboxError } from './errors';
import type { KeyMode, MerchantKeysFile, SandboxConfigFile } from './config';

const DAY = 86_400_000;
const generateKeyPairAsync = promisify(generateKeyPair);

/** RSA 2048 on the thread pool: a 5-merchant init makes 10–16 keys, generated in parallel. */
function rsa(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return generateKeyPairAsync('rsa', { modulusLength: 2048 });
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

/** Everything init writes holds keys or history: owner-only files and folders (issue 13 item 4). */
function privateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
}

function privateFile(path: string, data: string): void {
  writeFileSync(path, data, { mode: 0o600 });
  // `mode` applies only when the file is created; --force rewrites existing ones.
  chmodSync(path, 0o600);
}

/** Goods of the demo counter: Chinese names, integer fen. */
const DEMO_SUB_MERCHANTS = [
  { name: '老王牛肉面', catalog: [['NM01', '红烧牛肉面', 2800], ['NM02', '炸酱面', 2200], ['NM03', '凉拌黄瓜', 800], ['NM04', '卤蛋', 300]] },
  { name: '甜心奶茶铺', catalog: [['TX01', '珍珠奶茶', 1500], ['TX02', '杨枝甘露', 1800], ['TX03', '柠檬茶', 1200]] },
  { name: '福记烧腊', catalog: [['FJ01', '叉烧饭', 2600], ['FJ02', '烧鸭饭', 2800], ['FJ03', '老火例汤', 500]] },
  { name: '晨光书报亭', catalog: [['CG01', '城市晚报', 200], ['CG02', '笔记本', 1250], ['CG03', '中性笔', 350]] },
] as const;

/** 'none': the sandbox knows the participant (it sells in combined orders) but no keys exist for it. */
export type ParticipantMode = KeyMode | 'none';

export interface InitOptions {
  /** Platform-certificate (legacy) mode for every merchant instead of the WeChat Pay public key. */
  certificates?: boolean;
  /** Overwrite an existing DIR (refused by default so no keys or history are lost). */
  force?: boolean;
  /**
   * A mixed setup for tests: the initiator's mode, and each participant's by its index in
   * `sub_merchants` (the demo counter has four). Unnamed ones follow `certificates`.
   */
  modes?: { initiator?: KeyMode; participants?: ParticipantMode[] };
}

export interface InitMerchant {
  mchid: string;
  name: string;
  mode: ParticipantMode;
  /** The merchant's credentials folder: DIR/merchant/merchants/<mchid>; null for 'none'. */
  dir: string | null;
}

export interface InitResult {
  merchantDir: string;
  sandboxDir: string;
  /** The initiator (combine_mchid): its credentials are the root of merchantDir. */
  mchid: string;
  appid: string;
  /** The sub-merchants in `sub_merchants` order. */
  participants: InitMerchant[];
}

interface Generated {
  file: MerchantKeysFile;
  /** The merchant's own side. */
  apiKeyPem: string;
  apiCertPem: string;
  wechatPublicKeyPem?: string;
}

/**
 * One merchant's keys: its API key and certificate, and WeChat Pay's keys for it (a public key
 * with its PUB_KEY_ID, and/or two overlapping platform certificates). WeChat Pay's side is
 * written under `sideDir` (relative to the sandbox folder as `rel`).
 */
async function merchantKeys(mchid: string, mode: KeyMode, withPublicKey: boolean, sandboxDir: string, rel: string, now: number): Promise<Generated> {
  const sideDir = join(sandboxDir, rel);
  privateDir(sideDir);
  const platformSpecs = mode === 'certificates'
    ? [
        // The older one: in use for a year, its expiry moved up as in a rotation.
        { notBefore: new Date(now - 365 * DAY), notAfter: new Date(now + 30 * DAY) },
        // The newer one: effective since yesterday, both valid during the overlap.
        { notBefore: new Date(now - DAY), notAfter: new Date(now + 5 * 365 * DAY) },
      ]
    : [];
  const [api, wechat, ...platformKeys] = await Promise.all([rsa(), withPublicKey ? rsa() : Promise.resolve(undefined), ...platformSpecs.map(() => rsa())]);
  const merchantSerial = certSerial();
  const apiCertPem = createCertificate({
    serial: merchantSerial,
    subject: [['C', 'CN'], ['O', '沙箱商户'], ['OU', mchid], ['CN', mchid]],
    issuer: [['C', 'CN'], ['O', 'Tenpay.com'], ['OU', 'Tenpay.com CA Center'], ['CN', 'Tenpay.com Root CA (sandbox)']],
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 5 * 365 * DAY),
    publicKey: api!.publicKey,
    signingKey: api!.privateKey,
  });
  const file = (f: string) => (rel ? `${rel}/${f}` : f);
  const platform = platformSpecs.map((v, i) => {
    const keys = platformKeys[i]!;
    const serial = certSerial();
    const cert = createCertificate({
      serial,
      subject: [['C', 'CN'], ['ST', '广东省'], ['L', '深圳市'], ['O', '财付通支付科技有限公司'], ['OU', '财付通支付科技有限公司'], ['CN', 'Tenpay.com sandbox']],
      notBefore: v.notBefore,
      notAfter: v.notAfter,
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
    });
    privateFile(join(sideDir, `platform_${i + 1}_key.pem`), pem(keys.privateKey, 'pkcs8'));
    privateFile(join(sideDir, `platform_${i + 1}_cert.pem`), cert);
    return { serial_no: serial, effective_time: formatBeijing(v.notBefore), expire_time: formatBeijing(v.notAfter), key_file: file(`platform_${i + 1}_key.pem`), cert_file: file(`platform_${i + 1}_cert.pem`) };
  });
  privateFile(join(sideDir, 'merchant_cert.pem'), apiCertPem);
  const out: Generated = {
    file: {
      mchid,
      mode,
      apiv3_key: createNonce(32),
      merchant_cert_serial: merchantSerial,
      merchant_cert_file: file('merchant_cert.pem'),
      platform_certificates: platform,
    },
    apiKeyPem: pem(api!.privateKey, 'pkcs8'),
    apiCertPem,
  };
  if (wechat) {
    out.file.public_key_id = 'PUB_KEY_ID_01' + mchid + digits(12);
    out.file.public_key_file = file('wechatpay_private_key.pem');
    out.wechatPublicKeyPem = pem(wechat.publicKey, 'spki');
    privateFile(join(sideDir, 'wechatpay_private_key.pem'), pem(wechat.privateKey, 'pkcs8'));
    privateFile(join(sideDir, 'wechatpay_public_key.pem'), out.wechatPublicKeyPem);
  }
  return out;
}

/** The merchant's own folder: merchant.json (+ extra fields), API key and certificate, and the WeChat Pay public key in public-key mode. */
function writeMerchantFolder(dir: string, g: Generated, extra: Record<string, unknown>): void {
  privateDir(dir);
  privateFile(join(dir, 'apiclient_key.pem'), g.apiKeyPem);
  privateFile(join(dir, 'apiclient_cert.pem'), g.apiCertPem);
  const json: Record<string, unknown> = { mchid: g.file.mchid, ...('appid' in extra ? { appid: extra.appid } : {}), cert_serial: g.file.merchant_cert_serial, apiv3_key: g.file.apiv3_key };
  if (g.file.mode === 'public_key') {
    json.wechatpay_public_key_id = g.file.public_key_id;
    privateFile(join(dir, 'wechatpay_public_key.pem'), g.wechatPublicKeyPem!);
  } else {
    // A leftover public key would silently switch the merchant back to public-key mode.
    rmSync(join(dir, 'wechatpay_public_key.pem'), { force: true });
  }
  for (const [k, v] of Object.entries(extra)) if (k !== 'appid') json[k] = v;
  privateFile(join(dir, 'merchant.json'), JSON.stringify(json, null, 2) + '\n');
}

export async function initSandbox(dir: string, opts: InitOptions = {}): Promise<InitResult> {
  const merchantDir = join(dir, 'merchant');
  const sandboxDir = join(dir, 'sandbox');
  // Refuse once anything worth keeping exists; a half-finished init (no merchant.json, no state)
  // is simply redone.
  const history = ['state.db', 'state.json'].map((f) => join(sandboxDir, f)).find((p) => existsSync(p));
  if (!opts.force && (existsSync(join(merchantDir, 'merchant.json')) || history)) {
    throw new SandboxError('ALREADY_INITIALIZED', `${dir} already holds a sandbox; refusing to overwrite its keys and history (use --force)`);
  }
  // DIR itself is the caller's (it may be an existing data folder): created owner-only, never re-moded.
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  privateDir(merchantDir);
  privateDir(sandboxDir);
  // Participants' folders of an earlier init would name keys that no longer exist.
  rmSync(join(merchantDir, 'merchants'), { recursive: true, force: true });
  rmSync(join(sandboxDir, 'merchants'), { recursive: true, force: true });

  const now = Date.now();
  const defaultMode: KeyMode = opts.certificates ? 'certificates' : 'public_key';
  const mchid = '19' + digits(8);
  const appid = 'wx' + randomBytes(8).toString('hex');
  const subMerchants = DEMO_SUB_MERCHANTS.map((m, i) => ({
    mchid: '16' + digits(7) + String(i),
    name: m.name,
    catalog: m.catalog.map(([sku, name, price]) => ({ sku, name, price })),
  }));
  const pModes = opts.modes?.participants ?? [];
  if (pModes.length > subMerchants.length) throw new SandboxError('INVALID_OPTION', `modes.participants names ${pModes.length} participants; the demo counter has ${subMerchants.length}`);
  const modes = subMerchants.map((_, i) => pModes[i] ?? defaultMode);
  const initiatorMode = opts.modes?.initiator ?? defaultMode;

  // The initiator's WeChat Pay side stays at the sandbox folder's root (the single-merchant layout);
  // it always has a public key too, for answers to a request naming it during a migration (§2.5).
  const [initiator, ...participants] = await Promise.all([
    merchantKeys(mchid, initiatorMode, true, sandboxDir, '', now),
    ...subMerchants.map((m, i) => (modes[i] === 'none' ? Promise.resolve(undefined) : merchantKeys(m.mchid, modes[i] as KeyMode, modes[i] === 'public_key', sandboxDir, `merchants/${m.mchid}`, now))),
  ]);

  const config: SandboxConfigFile = {
    version: 2,
    ...initiator!.file,
    appid,
    sub_merchants: subMerchants,
    participants: participants.filter((p): p is Generated => p !== undefined).map((p) => p.file),
  };
  privateFile(join(sandboxDir, 'sandbox.json'), JSON.stringify(config, null, 2) + '\n');

  writeMerchantFolder(merchantDir, initiator!, { appid, sub_merchants: subMerchants });
  const result: InitMerchant[] = subMerchants.map((m, i) => {
    const g = participants[i];
    if (!g) return { mchid: m.mchid, name: m.name, mode: 'none', dir: null };
    const d = join(merchantDir, 'merchants', m.mchid);
    privateDir(join(merchantDir, 'merchants'));
    writeMerchantFolder(d, g, {});
    return { mchid: m.mchid, name: m.name, mode: g.file.mode, dir: d };
  });
  return { merchantDir, sandboxDir, mchid, appid, participants: result };
}
