/**
 * Payment notifications (reference §5): raw body bytes + headers → signature verified →
 * envelope parsed → resource decrypted (tag checked) → typed combine order. Each way it can
 * fail has its own error code (VerificationError, NotificationError, DecryptionError).
 */
import type { KeyObject } from 'node:crypto';
import { AEAD_ALGORITHM, decryptResource } from './aead';
import { parseCombineOrderResult } from './combine';
import { NotificationError } from './errors';
import type { CombineOrderResult, NotificationEnvelope } from './models';
import type { HeaderBag, Verifier } from './verify';

export const EVENT_TRANSACTION_SUCCESS = 'TRANSACTION.SUCCESS';
export const RESOURCE_TYPE_ENCRYPTED = 'encrypt-resource';

export interface ParsedNotification {
  envelope: NotificationEnvelope;
  resource: CombineOrderResult;
}

export async function parseNotification(verifier: Verifier, apiV3Key: KeyObject, headers: HeaderBag, rawBody: Buffer | string): Promise<ParsedNotification> {
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
  // Verify the bytes as received, before anything reads them.
  await verifier.verify(headers, body);
  const envelope = parseEnvelope(body);
  const plain = decryptResource(envelope.resource, apiV3Key);
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new NotificationError('RESOURCE_INVALID', 'decrypted resource is not JSON');
  }
  const r = parseCombineOrderResult(json);
  if (!r.ok) throw new NotificationError('RESOURCE_INVALID', `decrypted resource is not a combine order: ${r.reason}`);
  return { envelope, resource: r.value };
}

function parseEnvelope(body: Buffer): NotificationEnvelope {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(body.toString('utf8'));
  } catch {
    throw new NotificationError('NOTIFICATION_MALFORMED', 'notification body is not JSON');
  }
  if (!e || typeof e !== 'object' || Array.isArray(e)) throw new NotificationError('NOTIFICATION_MALFORMED', 'notification body is not an object');
  for (const k of ['id', 'create_time', 'event_type', 'resource_type'] as const) {
    if (typeof e[k] !== 'string' || !(e[k] as string)) throw new NotificationError('NOTIFICATION_MALFORMED', `notification has no ${k}`);
  }
  const res = e.resource as Record<string, unknown> | undefined;
  if (!res || typeof res !== 'object') throw new NotificationError('NOTIFICATION_MALFORMED', 'notification has no resource');
  if (e.event_type !== EVENT_TRANSACTION_SUCCESS) {
    // Combine payments are notified on success only (§5.2); anything else is not for us.
    throw new NotificationError('EVENT_TYPE_UNSUPPORTED', `unsupported event_type ${JSON.stringify(e.event_type)}`);
  }
  if (e.resource_type !== RESOURCE_TYPE_ENCRYPTED) {
    throw new NotificationError('RESOURCE_TYPE_UNSUPPORTED', `unsupported resource_type ${JSON.stringify(e.resource_type)}`);
  }
  if (res.original_type !== undefined && res.original_type !== 'transaction') {
    throw new NotificationError('RESOURCE_TYPE_UNSUPPORTED', `unsupported resource.original_type ${JSON.stringify(res.original_type)}`);
  }
  for (const k of ['ciphertext', 'nonce'] as const) {
    if (typeof res[k] !== 'string') throw new NotificationError('NOTIFICATION_MALFORMED', `notification resource has no ${k}`);
  }
  if (typeof res.algorithm !== 'string') throw new NotificationError('NOTIFICATION_MALFORMED', `notification resource has no algorithm (expected ${AEAD_ALGORITHM})`);
  return e as unknown as NotificationEnvelope;
}
