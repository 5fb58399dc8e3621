/**
 * POST /wechatpay/notify: raw body (size-limited) → verify signature on those bytes, timestamp
 * window, probes refused (client.parseNotification) → decrypt → check against the stored
 * order → ONE transaction: notification id under a UNIQUE key + state change only from a
 * non-final state. Concurrent duplicates therefore apply exactly once and push once.
 */
import type { IncomingMessage } from 'node:http';
import { DecryptionError, NotificationError, VerificationError } from '../wechatpay/errors';
import type { CombineOrderResult } from '../wechatpay/models';
import type { Db } from './db';
import type { Logger } from './log';
import { checkCombine, checkResult, transitionOf, type OrderService, type Ours } from './orders';
import { subKey, type Change, type OrderStore } from './store';
import type { PayClient, PayClients } from './upstream';
import { readBody } from './body';
import { RelayError } from './errors';

export interface NotifyOutcome {
  status: number;
  body?: { code: 'FAIL'; message: string };
}

const fail = (status: number, message: string): NotifyOutcome => ({ status, body: { code: 'FAIL', message } });

export class NotificationHandler {
  private readonly insertNotification;
  private readonly tx;

  constructor(
    db: Db,
    private readonly store: OrderStore,
    private readonly orders: OrderService,
    private readonly clients: PayClients,
    private readonly ours: Ours,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {
    this.insertNotification = db.prepare('INSERT OR IGNORE INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES (?, ?, ?, ?, ?)');
    // One transaction, optimistic: record the id (UNIQUE: a duplicate stops here), then one
    // UPDATE that changes the order only when it is non-final AND its stored sub-orders equal
    // the notification's (sub_key). Only when that changed nothing are the sub-orders read, to
    // tell "already final" (keep the id) from a mismatch or an unknown order (roll back: the id
    // is not recorded and nothing changed).
    const apply = db.transaction((id: string, eventType: string, resource: CombineOrderResult, key: string | null): ApplyResult => {
      const no = resource.combine_out_trade_no;
      const now = Date.now();
      if (this.insertNotification.run(id, no, eventType, new Date(now).toISOString(), 0).changes === 0) return { kind: 'duplicate' };
      const t = transitionOf(resource);
      const change = key === null ? null : this.store.applyMatchingInTx(no, key, t, now);
      if (change) return { kind: 'applied', change, state: t.state };
      const subs = this.store.subRows(no);
      if (subs.length === 0) throw new Refused({ kind: 'unknown' });
      const check = checkResult(this.ours, subs, resource);
      if (!check.ok) throw new Refused({ kind: 'mismatch', alertKind: check.kind, message: check.message });
      return { kind: 'applied', change: null, state: t.state };
    });
    // DEFERRED is enough: the first statement is a write, so the write lock (with busy_timeout)
    // is taken before anything is read.
    this.tx = (id: string, eventType: string, r: CombineOrderResult): ApplyResult => {
      // combine_mchid/appid wrong: no fast path, the slow path names the mismatch.
      const key = checkCombine(this.ours, r) ? null : subKey(r.sub_orders.map((x) => ({ mchid: x.mchid, out_trade_no: x.out_trade_no, amount: x.amount?.total_amount })));
      try {
        return apply(id, eventType, r, key);
      } catch (err) {
        if (err instanceof Refused) return err.result;
        throw err;
      }
    };
  }

  async handle(req: IncomingMessage): Promise<NotifyOutcome> {
    let raw: Buffer;
    try {
      raw = await readBody(req, this.maxBytes);
    } catch (err) {
      if (err instanceof RelayError) return fail(err.status, err.message);
      return fail(400, 'could not read the body');
    }
    let parsed: Awaited<ReturnType<PayClient['parseNotification']>>;
    try {
      // Key selection among all merchants' keys by Wechatpay-Serial, decryption with the APIv3
      // key of the merchant holding it, and the check that the resource is about that merchant
      // (merchant-keys.ts). A combine payment notification is the initiator's; the sub-orders
      // are then checked against what we created (checkResult).
      parsed = (await this.clients.parseNotification(req.headers, raw)).parsed;
    } catch (err) {
      if (err instanceof VerificationError) {
        this.log.warn({ code: err.code }, 'notification refused: verification');
        return fail(401, `signature verification failed: ${err.code}`);
      }
      if (err instanceof NotificationError && err.code === 'MERCHANT_MISMATCH') {
        // Genuinely signed by one of our merchants' keys but about another merchant: never
        // applied, and worth a manager's look (a mix-up of keys, or a replay across merchants).
        this.orders.alert('MERCHANT_MISMATCH', null, err.message, null);
      }
      if (err instanceof DecryptionError || err instanceof NotificationError) {
        this.log.warn({ code: err.code }, 'notification refused: payload');
        return fail(400, `notification refused: ${err.code}`);
      }
      this.log.error({ err: (err as Error).message }, 'notification handling failed');
      return fail(500, 'internal error');
    }
    const { envelope, resource } = parsed;
    const no = resource?.combine_out_trade_no;
    if (typeof no !== 'string' || !Array.isArray(resource.sub_orders)) return fail(400, 'resource is not a combine order');
    let r: ApplyResult;
    try {
      r = this.tx(envelope.id, envelope.event_type, resource);
    } catch (err) {
      // Not stored: answer 5xx so WeChat Pay delivers it again.
      this.log.error({ order: no, err: (err as Error).message }, 'notification not stored');
      return fail(500, 'could not store the notification');
    }
    switch (r.kind) {
      case 'unknown':
        this.orders.alert('UNKNOWN_ORDER', null, `notification ${envelope.id} for unknown order ${no}`, `notify:${envelope.id}:UNKNOWN_ORDER`);
        return fail(404, `unknown order ${no}`);
      case 'mismatch':
        this.orders.alert(r.alertKind, no, `notification ${envelope.id}: ${r.message}`, `notify:${envelope.id}:${r.alertKind}`);
        return fail(400, `notification does not match the order: ${r.alertKind}`);
      case 'duplicate':
        return { status: 204 };
      case 'applied':
        if (r.change) {
          this.store.emitChange(r.change);
          this.log.info({ order: no, state: r.state, source: 'notification' }, 'order state changed');
        }
        return { status: 204 };
    }
  }
}

/** Thrown inside the transaction to roll it back with an answer. */
class Refused extends Error {
  constructor(readonly result: ApplyResult) {
    super(result.kind);
  }
}

type ApplyResult =
  | { kind: 'unknown' }
  | { kind: 'mismatch'; alertKind: string; message: string }
  | { kind: 'duplicate' }
  | { kind: 'applied'; change: Change | null; state: string };
