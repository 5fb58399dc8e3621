/** Key material for tests: generated once per test file (RSA 2048, as WeChat Pay uses). */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiV3Key } from '../../../shared/wechatpay/aead';

export interface RsaPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function rsaPair(): RsaPair {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

export const API_V3_KEY_TEXT = 'TestApiV3Key0123456789abcdefghij';
export const apiKey = () => apiV3Key(API_V3_KEY_TEXT);

export interface TestCertificate {
  serial: string;
  pem: string;
  privateKey: KeyObject;
}

/** A self-signed X.509 certificate with a chosen serial (openssl: Node cannot issue certificates). */
export function selfSignedCertificate(serialHex: string = randomBytes(20).toString('hex').toUpperCase().replace(/^0/, '1')): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'wxcert-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'),
      '-days', '30', '-subj', '/CN=Tenpay.com Root CA test', '-set_serial', '0x' + serialHex,
    ], { stdio: 'ignore' });
    const pem = readFileSync(join(dir, 'c.pem'), 'utf8');
    return { serial: serialHex.toUpperCase(), pem, privateKey: createPrivateKey(readFileSync(join(dir, 'k.pem'))) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function writeTemp(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'wxtest-'));
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
