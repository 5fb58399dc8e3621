import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCredentials } from '../../shared/wechatpay/credentials';
import { ConfigError } from '../../shared/wechatpay/errors';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('loadCredentials: a bad folder names the file', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function folder(merchant: Record<string, unknown>, files: Record<string, string>): string {
    dir = mkdtempSync(join(tmpdir(), 'creds-'));
    writeFileSync(join(dir, 'merchant.json'), JSON.stringify({ mchid: '1900000109', appid: 'wx0a1b2c3d4e5f6a7b', apiv3_key: 'TestApiV3Key0123456789abcdefghij', sub_merchants: [{ mchid: '1900000110', name: '甲' }], ...merchant }));
    writeFileSync(join(dir, 'apiclient_key.pem'), keyPem);
    for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
    return dir;
  }

  it('a merchant certificate that is not a certificate is a ConfigError naming apiclient_cert.pem', () => {
    const d = folder({}, { 'apiclient_cert.pem': '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n' });
    let err: unknown;
    try {
      loadCredentials(d);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).setting).toBe('apiclient_cert.pem');
  });

  it('a public key id without wechatpay_public_key.pem is a ConfigError, not a silent switch to certificates', () => {
    const d = folder({ cert_serial: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', wechatpay_public_key_id: 'PUB_KEY_ID_0119000001092025' }, {});
    expect(() => loadCredentials(d)).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID', setting: 'wechatpay_public_key.pem' }));
  });

  it('cert_serial given: the certificate is not needed (control case)', () => {
    const d = folder({ cert_serial: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1' }, {});
    expect(loadCredentials(d).certSerial).toBe('5157F09EFDC096DE15EBE81A47057A7232F1B8E1');
  });
});

describe('loadCredentials: every merchant its own keys (merchants/<mchid>/)', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const INITIATOR = '1900000109';
  const APIV3 = 'TestApiV3Key0123456789abcdefghij';
  const pub = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;

  /** Root = initiator (public-key mode); sub_merchants: the initiator itself and three others. */
  function root(): string {
    dir = mkdtempSync(join(tmpdir(), 'creds-multi-'));
    writeFileSync(join(dir, 'merchant.json'), JSON.stringify({
      mchid: INITIATOR, appid: 'wx0a1b2c3d4e5f6a7b', apiv3_key: APIV3, cert_serial: 'AA01', wechatpay_public_key_id: 'PUB_KEY_ID_0119000001092025',
      sub_merchants: [{ mchid: INITIATOR, name: '自营' }, { mchid: '1900000110', name: '甲' }, { mchid: '1900000111', name: '乙' }, { mchid: '1900000112', name: '丙' }],
    }));
    writeFileSync(join(dir, 'apiclient_key.pem'), keyPem);
    writeFileSync(join(dir, 'wechatpay_public_key.pem'), pub);
    return dir;
  }
  function participant(mchid: string, json: Record<string, unknown> = {}, files: Record<string, string> = { 'apiclient_key.pem': keyPem }): void {
    const d = join(dir, 'merchants', mchid);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'merchant.json'), JSON.stringify({ mchid, cert_serial: `BB${mchid.slice(-2)}`, apiv3_key: `${mchid}ApiV3Key0123456789abcdef`.slice(0, 32), ...json }));
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  }
  const fail = (d: string): ConfigError => {
    try {
      loadCredentials(d);
    } catch (e) {
      return e as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('the one-folder layout keeps working: only the initiator (selling here) has keys', () => {
    const c = loadCredentials(root());
    expect([...c.participants.keys()]).toEqual([INITIATOR]);
    // The initiator as a participant is the root keys themselves, not a copy.
    expect(c.participants.get(INITIATOR)!.privateKey).toBe(c.privateKey);
  });

  it('loads each participant in its own key mode; a participant without a folder has no keys', () => {
    root();
    participant('1900000110', { wechatpay_public_key_id: 'PUB_KEY_ID_0119000001102025' }, { 'apiclient_key.pem': keyPem, 'wechatpay_public_key.pem': pub });
    participant('1900000111'); // platform-certificate mode: no public key file
    const c = loadCredentials(dir);
    expect([...c.participants.keys()].sort()).toEqual([INITIATOR, '1900000110', '1900000111']);
    const a = c.participants.get('1900000110')!;
    const b = c.participants.get('1900000111')!;
    expect(a.wechatpayPublicKey?.id).toBe('PUB_KEY_ID_0119000001102025');
    expect(b.wechatpayPublicKey).toBeUndefined();
    expect([a.mchid, a.certSerial, b.certSerial]).toEqual(['1900000110', 'BB10', 'BB11']);
    expect(a.apiV3Key.export().toString()).not.toBe(APIV3);
    expect(c.participants.has('1900000112')).toBe(false);
  });

  it('a broken participant folder is a ConfigError naming the merchant folder and the file', () => {
    root();
    participant('1900000110', {}, { 'apiclient_key.pem': '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' });
    expect(fail(dir).setting).toBe('merchants/1900000110/apiclient_key.pem');
    rmSync(join(dir, 'merchants'), { recursive: true });
    participant('1900000110', { apiv3_key: 'short' });
    expect(fail(dir).setting).toBe('merchants/1900000110/merchant.json apiv3_key');
    rmSync(join(dir, 'merchants'), { recursive: true });
    participant('1900000110', { wechatpay_public_key_id: 'PUB_KEY_ID_0119000001102025' });
    expect(fail(dir).setting).toBe('merchants/1900000110/wechatpay_public_key.pem');
    rmSync(join(dir, 'merchants'), { recursive: true });
    participant('1900000110', {}, {});
    expect(fail(dir).message).toMatch(/^merchants\/1900000110\/apiclient_key\.pem: cannot read/);
  });

  it('refuses a folder whose merchant.json names another mchid, an unknown merchant, and a second set of keys for the initiator', () => {
    root();
    participant('1900000110', { mchid: '1900000111' });
    expect(fail(dir).setting).toBe('merchants/1900000110/merchant.json mchid');
    rmSync(join(dir, 'merchants'), { recursive: true });
    participant('1999999999');
    expect(fail(dir).message).toContain('not in merchant.json sub_merchants');
    rmSync(join(dir, 'merchants'), { recursive: true });
    participant(INITIATOR);
    expect(fail(dir).message).toContain('is the initiator');
  });
});
