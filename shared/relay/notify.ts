/**
 * POST /wechatpay/notify: raw body (size-limited) → verify signature on those bytes, timestamp
 * window, probes refused (clients.parseNotifyRequest) → decrypt → check against the stored
 * order → ONE transaction: notification id under a UNIQUE key + state change only from a
 * non-final state. Concurrent duplicates therefore apply exactly once and push once.
 * A combined sale's payment names the order (combine_out_trade_no); a single sale's basic
 * payment names its one sub-order (out_trade_no), which leads to the order; then the same path.
 */
import type { IncomingMessage } from 'node:http';
import { DecryptionError, NotificationError, VerificationError } from '../wechatpay/errors';
import type { NativeOrderResult } from '../wechatpay/models';
import type { Logger } from './log';
import { checkCombine, checkUpstream, nativeTransition, transitionOf, type OrderService, type Ours, type Upstream } from './orders';
import { subKey } from './order-view';
import type { PaymentApplyResult, RelayStore } from './repo-types';
import type { PayClients } from './upstream';
import { readBody } from './body';
import { RelayError } from './errors';
import type { RefundService } from './refunds';

export interface NotifyOutcome {
  status: number;
  body?: { code: 'FAIL'; message: string };
}

const fail = (status: number, message: string): NotifyOutcome => ({ status, body: { code: 'FAIL', message } });

export class NotificationHandler {
  /** REFUND.* notifications (refunds.ts), set by index.ts. */
  refunds: Pick<RefundService, 'applyNotification'> | null = null;

  constructor(
    private readonly store: RelayStore,
    private readonly orders: OrderService,
    private readonly clients: PayClients,
    private readonly ours: Ours,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  /**
   * The payment's transaction (the store applies it: id under a unique key + the state change
   * only from a non-final state, in one transaction; SQLite groups those of one event-loop turn).
   */
  private apply(id: string, eventType: string, no: string, up: Upstream): Promise<PaymentApplyResult> {
    let key: string | null;
    if (up.kind === 'combine') {
      // combine_mchid/appid wrong, or fewer than two sub-orders (never a combined sale's, and
      // its key could equal a single sale's): no fast path, the slow path names the mismatch.
      const r = up.result;
      key = checkCombine(this.ours, r) || r.sub_orders.length < 2 ? null : subKey(r.sub_orders.map((x) => ({ mchid: x.mchid, out_trade_no: x.out_trade_no, amount: x.amount?.total_amount })));
    } else {
      // appid not ours: no fast path either (the resource's mchid/amount are in the key).
      const r = up.result;
      key = r.appid !== this.ours.appid ? null : subKey([{ mchid: r.mchid, out_trade_no: r.out_trade_no, amount: r.amount?.total }]);
    }
    // The sub-order key holds one entry for a single sale and 2–10 for a combined one, so a
    // payment of one kind never matches an order of the other on the fast path.
    const transition = up.kind === 'combine' ? transitionOf(up.result) : nativeTransition(up.result);
    return this.store.notifications.applyPayment({
      id, eventType, no, key, transition,
      check: (row, subs) => {
        const check = checkUpstream(this.ours, row.kind, subs, up);
        return check.ok ? null : { alertKind: check.kind, message: check.message };
      },
    });
  }

  async handle(req: IncomingMessage): Promise<NotifyOutcome> {
    let raw: Buffer;
    try {
      raw = await readBody(req, this.maxBytes);
    } catch (err) {
      if (err instanceof RelayError) return fail(err.status, err.message);
      return fail(400, 'could not read the body');
    }
    let parsed: Awaited<ReturnType<PayClients['parseNotifyRequest']>>['parsed'];
    try {
      // Key selection among all merchants' keys by Wechatpay-Serial, decryption with the APIv3
      // key of the merchant holding it, and the check that the resource is about that merchant
      // (merchant-keys.ts). A combine payment notification is the initiator's, a basic payment
      // its merchant's; the content is then checked against what we created (checkUpstream).
      parsed = (await this.clients.parseNotifyRequest(req.headers, raw, { kinds: NOTIFY_KINDS })).parsed;
    } catch (err) {
      if (err instanceof VerificationError) {
        this.log.warn({ code: err.code }, 'notification refused: verification');
        return fail(401, `signature verification failed: ${err.code}`);
      }
      if (err instanceof NotificationError && err.code === 'MERCHANT_MISMATCH') {
        // Genuinely signed by one of our merchants' keys but about another merchant: never
        // applied, and worth a manager's look (a mix-up of keys, or a replay across merchants).
        await this.orders.alert('MERCHANT_MISMATCH', null, err.message, null);
      }
      if (err instanceof DecryptionError || err instanceof NotificationError) {
        this.log.warn({ code: err.code }, 'notification refused: payload');
        return fail(400, `notification refused: ${err.code}`);
      }
      this.log.error({ err: (err as Error).message }, 'notification handling failed');
      return fail(500, 'internal error');
    }
    const { envelope } = parsed;
    let no: string;
    let up: Upstream;
    if (parsed.kind === 'combine-transaction') {
      no = parsed.resource.combine_out_trade_no;
      up = { kind: 'combine', result: parsed.resource };
    } else if (parsed.kind === 'transaction') {
      // A basic payment names the sub-order; sub-orders never change, so this read needs no transaction.
      let sub;
      try {
        sub = await this.store.orders.subByNo(parsed.resource.out_trade_no);
      } catch (err) {
        return this.notStored(parsed.resource.out_trade_no, err);
      }
      if (!sub) return await this.unknown(envelope.id, parsed.resource.out_trade_no);
      no = sub.combine_out_trade_no;
      up = { kind: 'single', result: parsed.resource as NativeOrderResult };
    } else if (parsed.kind === 'refund' && this.refunds) {
      // REFUND.*: the refund's own path (refunds.ts), its id recorded in the same table and
      // the same transaction as the refund's change.
      let out: { status: number; message?: string };
      try {
        out = await this.refunds.applyNotification(parsed.envelope, parsed.resource);
      } catch (err) {
        return this.notStored(parsed.resource.out_refund_no, err);
      }
      return out.status < 300 ? { status: out.status } : fail(out.status, out.message ?? 'refused');
    } else {
      return fail(400, `notification kind ${parsed.kind} is not handled here`);
    }
    let r: PaymentApplyResult;
    try {
      r = await this.apply(envelope.id, envelope.event_type, no, up);
    } catch (err) {
      return this.notStored(no, err);
    }
    switch (r.kind) {
      case 'unknown':
        return await this.unknown(envelope.id, no);
      case 'mismatch':
        await this.orders.alert(r.alertKind, no, `notification ${envelope.id}: ${r.message}`, `notify:${envelope.id}:${r.alertKind}`);
        return fail(400, `notification does not match the order: ${r.alertKind}`);
      case 'duplicate':
        return { status: 204 };
      case 'applied':
        // The change reaches the terminals through the store's change feed (every relay's).
        if (r.changed) this.log.info({ order: no, state: r.state, source: 'notification' }, 'order state changed');
        return { status: 204 };
    }
  }

  /**
   * Not stored (the database is unreachable, a commit failed): 503, so WeChat Pay delivers it
   * again later; nothing of it was applied.
   */
  private notStored(what: string, err: unknown): NotifyOutcome {
    this.log.error({ order: what, err: (err as Error).message }, 'notification not stored');
    return fail(503, `could not store the notification, retry later`);
  }

  /** A payment of an order (or basic order number) we never created: alerted, 404, not recorded. */
  private async unknown(id: string, no: string): Promise<NotifyOutcome> {
    await this.orders.alert('UNKNOWN_ORDER', null, `notification ${id} for unknown order ${no}`, `notify:${id}:UNKNOWN_ORDER`);
    return fail(404, `unknown order ${no}`);
  }
}

/** Payment notifications handled here: combined and single (basic Native) sales. */
const NOTIFY_KINDS = ['combine-transaction', 'transaction', 'refund'] as const;
