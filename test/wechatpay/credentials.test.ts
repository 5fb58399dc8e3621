import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
