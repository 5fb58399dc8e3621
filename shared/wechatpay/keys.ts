/** Key parsing, done once at start: never per request. */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ConfigError } from './errors';

export function loadPrivateKey(pem: string | Buffer, setting = 'apiclient_key.pem'): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`not an RSA key (${key.asymmetricKeyType})`);
    return key;
  } catch (err) {
    throw new ConfigError(setting, `not a usable RSA private key: ${(err as Error).message}`);
  }
}

export function loadPublicKey(pem: string | Buffer, setting = 'wechatpay_public_key.pem'): KeyObject {
  try {
    return createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(setting, `not a usable public key: ${(err as Error).message}`);
  }
}

/** Certificate serial as WeChat Pay writes it: upper-case hex. */
export function certificateSerial(pem: string | Buffer): string {
  return new X509Certificate(pem).serialNumber.toUpperCase();
}

/** Serials are hex: compare without regard to case (public key ids are compared exactly). */
export function normalizeSerial(serial: string): string {
  return serial.startsWith('PUB_KEY_ID_') ? serial : serial.toUpperCase();
}
