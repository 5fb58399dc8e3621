/** AEAD_AES_256_GCM as APIv3 uses it for notification resources and platform certificates. */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { DecryptionError, ConfigError } from './errors';

export const AEAD_ALGORITHM = 'AEAD_AES_256_GCM';
const TAG_LENGTH = 16;

export interface EncryptedResource {
  algorithm: string;
  ciphertext: string;
  nonce: string;
  associated_data?: string;
  original_type?: string;
}

/** The APIv3 key as an AES-256 key object: 32 bytes of UTF-8, parsed once. */
export function apiV3Key(key: string): KeyObject {
  const bytes = Buffer.from(key, 'utf8');
  if (bytes.length !== 32) throw new ConfigError('apiv3_key', `must be exactly 32 bytes, got ${bytes.length}`);
  return createSecretKey(bytes);
}

/**
 * Decrypts `resource` and checks its GCM tag (in `final()`: without it a forgery would pass).
 * IV = nonce as UTF-8 bytes, AAD = associated_data (empty when absent).
 */
export function decryptResource(resource: EncryptedResource, key: KeyObject): Buffer {
  if (resource.algorithm !== AEAD_ALGORITHM) {
    throw new DecryptionError('ALGORITHM_UNSUPPORTED', `unsupported algorithm ${JSON.stringify(resource.algorithm)}`);
  }
  if (typeof resource.ciphertext !== 'string' || typeof resource.nonce !== 'string' || resource.nonce.length === 0) {
    throw new DecryptionError('RESOURCE_MALFORMED', 'resource needs ciphertext and nonce strings');
  }
  const data = Buffer.from(resource.ciphertext, 'base64');
  if (data.length <= TAG_LENGTH) throw new DecryptionError('RESOURCE_MALFORMED', 'ciphertext is shorter than the GCM tag');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(resource.nonce, 'utf8'));
    decipher.setAuthTag(data.subarray(data.length - TAG_LENGTH));
    decipher.setAAD(Buffer.from(resource.associated_data ?? '', 'utf8'));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_LENGTH)), decipher.final()]);
  } catch (err) {
    throw new DecryptionError('DECRYPT_FAILED', 'resource failed authentication (wrong APIv3 key or tampered data)', err);
  }
}

/** Encrypts as WeChat Pay does (sandbox, tests): fresh 12-character nonce unless given. */
export function encryptResource(plaintext: string | Buffer, key: KeyObject, associatedData: string, nonce?: string): EncryptedResource {
  const iv = nonce ?? randomBytes(9).toString('base64url').slice(0, 12);
  const cipher = createCipheriv('aes-256-gcm', key, Buffer.from(iv, 'utf8'));
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { algorithm: AEAD_ALGORITHM, ciphertext: body.toString('base64'), nonce: iv, associated_data: associatedData };
}
