/**
 * Notifications (reference §5, addendum): ONE path for every kind, modelled on wechatpay-go's
 * ParseNotifyRequest and octokit/webhooks' verify → parse → emit:
 *
 *   raw body bytes + headers → signature verified (before anything reads the body) → envelope
 *   checked → resource decrypted (GCM tag checked) → validated and typed by event type:
 *
 *   TRANSACTION.SUCCESS + combine resource (combine_out_trade_no, sub_orders) → 'combine-transaction'
 *   TRANSACTION.SUCCESS + basic resource (out_trade_no, mchid, amount…)     → 'transaction'
 *   REFUND.SUCCESS | REFUND.ABNORMAL | REFUND.CLOSED (original_type refund) → 'refund'
 *
 * Each way it can fail has its own error code (VerificationError, NotificationError,
 * DecryptionError). The keys are one merchant's; which merchant's keys to use for a given
 * notification is chosen by the caller (merchant-keys.ts, by `Wechatpay-Serial`).
 */
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { AEAD_ALGORITHM, decryptResource } from './aead';
import { parseCombineOrderResult } from './combine';
import { NotificationError } from './errors';
import type { CombineOrderResult, NativeOrderResult, NotificationEnvelope, RefundEventType, RefundNotificationResource } from './models';
import { parseNativeOrderResult } from './native';
import { REFUND_STATUSES } from './refund';
import type { HeaderBag, Verifier } from './verify';

export const EVENT_TRANSACTION_SUCCESS = 'TRANSACTION.SUCCESS';
export const REFUND_EVENT_TYPES: readonly RefundEventType[] = ['REFUND.SUCCESS', 'REFUND.ABNORMAL', 'REFUND.CLOSED'];
export const RESOURCE_TYPE_ENCRYPTED = 'encrypt-resource';

export type NotificationKind = 'combine-transaction' | 'transaction' | 'refund';
export const NOTIFICATION_KINDS: readonly NotificationKind[] = ['combine-transaction', 'transaction', 'refund'];

/** The result of parseNotifyRequest: discriminate on `kind`. */
export type WechatPayNotification =
  | { kind: 'combine-transaction'; eventType: 'TRANSACTION.SUCCESS'; envelope: NotificationEnvelope; resource: CombineOrderResult }
  | { kind: 'transaction'; eventType: 'TRANSACTION.SUCCESS'; envelope: NotificationEnvelope; resource: NativeOrderResult }
  | { kind: 'refund'; eventType: RefundEventType; envelope: NotificationEnvelope; resource: RefundNotificationResource };

export type NotificationOf<K extends NotificationKind> = Extract<WechatPayNotification, { kind: K }>;

/** One merchant's keys: the verifier of its WeChat Pay key(s) and its APIv3 key. */
export interface NotificationKeys {
  verifier: Verifier;
  apiV3Key: KeyObject;
}

export interface ParseNotifyOptions {
  /**
   * Kinds the caller handles (default all). A refund event when 'refund' is not among them is
   * refused before decryption (EVENT_TYPE_UNSUPPORTED); a payment resource of a kind not among
   * them is refused after it (RESOURCE_INVALID): only decryption tells combine from basic.
   */
  kinds?: readonly NotificationKind[];
}

/** Legacy shape (combine payments only), kept for parseNotification's callers. */
export interface ParsedNotification {
  envelope: NotificationEnvelope;
  resource: CombineOrderResult;
}

/** The `original_type` each event carries. */
const ORIGINAL_TYPE: Record<string, string> = {
  [EVENT_TRANSACTION_SUCCESS]: 'transaction',
  'REFUND.SUCCESS': 'refund',
  'REFUND.ABNORMAL': 'refund',
  'REFUND.CLOSED': 'refund',
};

const refundResourceSchema = z.looseObject({
  mchid: z.string().min(1),
  out_trade_no: z.string().min(1),
  transaction_id: z.string().min(1),
  out_refund_no: z.string().min(1),
  refund_id: z.string().min(1),
  refund_status: z.enum(REFUND_STATUSES),
  success_time: z.string().optional(),
  user_received_account: z.string().optional(),
  amount: z.looseObject({
    total: z.number().int(),
    refund: z.number().int(),
    payer_total: z.number().int().optional(),
    payer_refund: z.number().int().optional(),
  }),
});

/**
 * Verify → parse → decrypt → validate one notification with one merchant's keys.
 * Throws VerificationError, NotificationError or DecryptionError; never returns unverified data.
 */
export async function parseNotifyRequest(keys: NotificationKeys, headers: HeaderBag, rawBody: Buffer | string, opts: ParseNotifyOptions = {}): Promise<WechatPayNotification> {
  const kinds = opts.kinds ?? NOTIFICATION_KINDS;
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
  // Verify the bytes as received, before anything reads them.
  await keys.verifier.verify(headers, body);
  const envelope = parseEnvelope(body, kinds);
  const plain = decryptResource(envelope.resource, keys.apiV3Key);
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new NotificationError('RESOURCE_INVALID', 'decrypted resource is not JSON');
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new NotificationError('RESOURCE_INVALID', 'decrypted resource is not an object');

  if (envelope.event_type !== EVENT_TRANSACTION_SUCCESS) {
    const r = refundResourceSchema.safeParse(json);
    if (!r.success) throw new NotificationError('RESOURCE_INVALID', `decrypted resource is not a refund: ${firstIssue(r.error)}`);
    const resource = r.data as unknown as RefundNotificationResource;
    // Both are authenticated; if they disagree, neither can be trusted to say what happened.
    if (`REFUND.${resource.refund_status}` !== envelope.event_type) {
      throw new NotificationError('RESOURCE_INVALID', `refund_status ${resource.refund_status} contradicts event_type ${envelope.event_type}`);
    }
    return { kind: 'refund', eventType: envelope.event_type as RefundEventType, envelope, resource };
  }

  // A payment: only the decrypted content tells a combine order from a basic one.
  if ('combine_out_trade_no' in json) {
    if (!kinds.includes('combine-transaction')) throw new NotificationError('RESOURCE_INVALID', 'decrypted resource is a combine order, which is not handled here');
    const r = parseCombineOrderResult(json);
    if (!r.ok) throw new NotificationError('RESOURCE_INVALID', `decrypted resource is not a combine order: ${r.reason}`);
    return { kind: 'combine-transaction', eventType: EVENT_TRANSACTION_SUCCESS, envelope, resource: r.value };
  }
  if (!kinds.includes('transaction')) {
    // The legacy (combine-only) wording: anything else is "not a combine order".
    throw new NotificationError('RESOURCE_INVALID', 'decrypted resource is not a combine order (no combine_out_trade_no)');
  }
  const r = parseNativeOrderResult(json, { paid: true });
  if (!r.ok) throw new NotificationError('RESOURCE_INVALID', `decrypted resource is not a basic order: ${r.reason}`);
  return { kind: 'transaction', eventType: EVENT_TRANSACTION_SUCCESS, envelope, resource: r.value };
}

/**
 * Combine payments only (the relay's path before refunds and basic Native): the same single
 * path, limited to 'combine-transaction'. Refund events → EVENT_TYPE_UNSUPPORTED; a basic
 * payment → RESOURCE_INVALID.
 */
export async function parseNotification(verifier: Verifier, apiV3Key: KeyObject, headers: HeaderBag, rawBody: Buffer | string): Promise<ParsedNotification> {
  const n = await parseNotifyRequest({ verifier, apiV3Key }, headers, rawBody, { kinds: ['combine-transaction'] });
  return { envelope: n.envelope, resource: n.resource as CombineOrderResult };
}

function firstIssue(e: z.ZodError): string {
  const issue = e.issues[0]!;
  return `/${issue.path.join('/')}: ${issue.message}`;
}

function parseEnvelope(body: Buffer, kinds: readonly NotificationKind[]): NotificationEnvelope {
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
  if (!res || typeof res !== 'object' || Array.isArray(res)) throw new NotificationError('NOTIFICATION_MALFORMED', 'notification has no resource');
  const event = e.event_type as string;
  const expected = ORIGINAL_TYPE[event];
  const accepted = event === EVENT_TRANSACTION_SUCCESS ? kinds.includes('combine-transaction') || kinds.includes('transaction') : kinds.includes('refund');
  // Payments are notified on success only (§5.2); refunds with their three outcomes.
  if (expected === undefined || !accepted) throw new NotificationError('EVENT_TYPE_UNSUPPORTED', `unsupported event_type ${JSON.stringify(event)}`);
  if (e.resource_type !== RESOURCE_TYPE_ENCRYPTED) {
    throw new NotificationError('RESOURCE_TYPE_UNSUPPORTED', `unsupported resource_type ${JSON.stringify(e.resource_type)}`);
  }
  // Absent original_type is tolerated (the resource is still checked after decryption); a
  // present one must match the event.
  if (res.original_type !== undefined && res.original_type !== expected) {
    throw new NotificationError('RESOURCE_TYPE_UNSUPPORTED', `resource.original_type ${JSON.stringify(res.original_type)} does not fit event_type ${event}`);
  }
  for (const k of ['ciphertext', 'nonce'] as const) {
    if (typeof res[k] !== 'string') throw new NotificationError('NOTIFICATION_MALFORMED', `notification resource has no ${k}`);
  }
  if (typeof res.algorithm !== 'string') throw new NotificationError('NOTIFICATION_MALFORMED', `notification resource has no algorithm (expected ${AEAD_ALGORITHM})`);
  return e as unknown as NotificationEnvelope;
}

export type NotificationHandler<K extends NotificationKind> = (n: NotificationOf<K>) => unknown | Promise<unknown>;
/** Anything that verifies and parses one notification (keys of one merchant, or a registry). */
export type NotificationParser = (headers: HeaderBag, rawBody: Buffer, opts: ParseNotifyOptions) => Promise<WechatPayNotification>;

/**
 * A small emitter over parseNotifyRequest: `on(kind, handler)`, then `receive(headers, body)`
 * verifies, parses and awaits that kind's handlers in order. Kinds without a handler are
 * refused (EVENT_TYPE_UNSUPPORTED / RESOURCE_INVALID) rather than acknowledged and lost, and a
 * handler's error rejects `receive`, so the HTTP layer answers 5xx and WeChat Pay delivers again.
 */
export class NotificationDispatcher {
  private readonly handlers = new Map<NotificationKind, NotificationHandler<NotificationKind>[]>();
  private readonly parse: NotificationParser;

  constructor(source: NotificationKeys | NotificationParser) {
    this.parse = typeof source === 'function' ? source : (h, b, o) => parseNotifyRequest(source, h, b, o);
  }

  on<K extends NotificationKind>(kind: K, handler: NotificationHandler<K>): this {
    if (!NOTIFICATION_KINDS.includes(kind)) throw new TypeError(`unknown notification kind ${kind}`);
    const list = this.handlers.get(kind) ?? [];
    list.push(handler as unknown as NotificationHandler<NotificationKind>);
    this.handlers.set(kind, list);
    return this;
  }

  async receive(headers: HeaderBag, rawBody: Buffer): Promise<WechatPayNotification> {
    const kinds = [...this.handlers.keys()];
    const n = await this.parse(headers, rawBody, { kinds });
    const list = this.handlers.get(n.kind);
    // A parser that ignores `kinds` (e.g. a merchant registry) still gets no unhandled kind through.
    if (!list?.length) throw new NotificationError('EVENT_TYPE_UNSUPPORTED', `no handler for ${n.kind} notifications`);
    for (const h of list) await h(n);
    return n;
  }
}
