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
import type { Db } from './db';
import type { Logger } from './log';
import { checkCombine, checkUpstream, nativeTransition, transitionOf, type OrderService, type Ours, type Upstream } from './orders';
import { subKey, type Change, type OrderStore } from './store';
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
  private readonly insertNotification;
  private readonly tx;
  private readonly flush: () => void;
  private queue: Pending[] = [];
  private flushScheduled = false;
  /** REFUND.* notifications (refunds.ts), set by index.ts. */
  refunds: Pick<RefundService, 'applyNotification'> | null = null;

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
    const apply = db.transaction((id: string, eventType: string, no: string, up: Upstream, key: string | null): ApplyResult => {
      const now = Date.now();
      if (this.insertNotification.run(id, no, eventType, new Date(now).toISOString(), 0).changes === 0) return { kind: 'duplicate' };
      const t = up.kind === 'combine' ? transitionOf(up.result) : nativeTransition(up.result);
      // The sub-order key holds one entry for a single sale and 2–10 for a combined one, so a
      // payment of one kind never matches an order of the other here.
      const change = key === null ? null : this.store.applyMatchingInTx(no, key, t, now);
      if (change) return { kind: 'applied', change, state: t.state };
      const row = this.store.row(no);
      const subs = this.store.subRows(no);
      if (!row || subs.length === 0) throw new Refused({ kind: 'unknown' });
      const check = checkUpstream(this.ours, row.kind, subs, up);
      if (!check.ok) throw new Refused({ kind: 'mismatch', alertKind: check.kind, message: check.message });
      return { kind: 'applied', change: null, state: t.state };
    });
    // Group commit: the notifications that reach this point within one turn of the event loop
    // are applied in ONE transaction, each inside its own savepoint (`apply` nested in
    // `applyBatch`), so a refused one rolls back alone, and each is answered only after the
    // common COMMIT. A commit writes every page it dirtied to the WAL: pages shared by the
    // batch (change-cursor, paid and transaction-id index leaves, the WAL header) are written
    // once per batch instead of once per notification. Exactly-once is unchanged: the id
    // (UNIQUE) and the state change are still in the same transaction, and a duplicate within
    // a batch sees the first one's id.
    // DEFERRED is enough: the first statement is a write, so the write lock (with busy_timeout)
    // is taken before anything is read.
    const applyBatch = db.transaction((batch: Pending[]) => {
      for (const p of batch) {
        // An error SQLite answers by rolling back the whole transaction (disk full, I/O):
        // the rest must not run in autocommit; the COMMIT then fails and all are answered 5xx.
        if (!db.inTransaction) {
          p.error = new Error('the notifications transaction was rolled back');
          continue;
        }
        try {
          p.result = this.tx(p.id, p.eventType, p.no, p.up);
        } catch (err) {
          // That savepoint was rolled back; the others stand.
          p.error = err;
        }
      }
    });
    this.flush = () => {
      const batch = this.queue;
      this.queue = [];
      this.flushScheduled = false;
      try {
        applyBatch(batch);
      } catch (err) {
        // The COMMIT failed: nothing of the batch is stored; each is answered 5xx.
        for (const p of batch) p.reject(err);
        return;
      }
      for (const p of batch) {
        if ('error' in p) p.reject(p.error);
        else p.resolve(p.result!);
      }
    };
    this.tx = (id: string, eventType: string, no: string, up: Upstream): ApplyResult => {
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
      try {
        return apply(id, eventType, no, up, key);
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
        this.orders.alert('MERCHANT_MISMATCH', null, err.message, null);
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
      const sub = this.store.subByNo(parsed.resource.out_trade_no);
      if (!sub) return this.unknown(envelope.id, parsed.resource.out_trade_no);
      no = sub.combine_out_trade_no;
      up = { kind: 'single', result: parsed.resource as NativeOrderResult };
    } else if (parsed.kind === 'refund' && this.refunds) {
      // REFUND.*: the refund's own path (refunds.ts), its id recorded in the same table and
      // the same transaction as the refund's change.
      let out: { status: number; message?: string };
      try {
        out = this.refunds.applyNotification(parsed.envelope, parsed.resource,
          (id, order, eventType) => this.insertNotification.run(id, order, eventType, new Date().toISOString(), 1).changes > 0);
      } catch (err) {
        this.log.error({ refund: parsed.resource.out_refund_no, err: (err as Error).message }, 'refund notification not stored');
        return fail(500, 'could not store the notification');
      }
      return out.status < 300 ? { status: out.status } : fail(out.status, out.message ?? 'refused');
    } else {
      return fail(400, `notification kind ${parsed.kind} is not handled here`);
    }
    let r: ApplyResult;
    try {
      r = await this.enqueue(envelope.id, envelope.event_type, no, up);
    } catch (err) {
      // Not stored: answer 5xx so WeChat Pay delivers it again.
      this.log.error({ order: no, err: (err as Error).message }, 'notification not stored');
      return fail(500, 'could not store the notification');
    }
    switch (r.kind) {
      case 'unknown':
        return this.unknown(envelope.id, no);
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

  /** Applied with the others of this event-loop turn (see the constructor), after their commit. */
  private enqueue(id: string, eventType: string, no: string, up: Upstream): Promise<ApplyResult> {
    return new Promise<ApplyResult>((resolve, reject) => {
      this.queue.push({ id, eventType, no, up, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /** A payment of an order (or basic order number) we never created: alerted, 404, not recorded. */
  private unknown(id: string, no: string): NotifyOutcome {
    this.orders.alert('UNKNOWN_ORDER', null, `notification ${id} for unknown order ${no}`, `notify:${id}:UNKNOWN_ORDER`);
    return fail(404, `unknown order ${no}`);
  }
}

/** Payment notifications handled here: combined and single (basic Native) sales. */
const NOTIFY_KINDS = ['combine-transaction', 'transaction', 'refund'] as const;

/** A notification waiting for its batch's transaction. */
interface Pending {
  id: string;
  eventType: string;
  no: string;
  up: Upstream;
  resolve: (r: ApplyResult) => void;
  reject: (err: unknown) => void;
  result?: ApplyResult;
  error?: unknown;
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
