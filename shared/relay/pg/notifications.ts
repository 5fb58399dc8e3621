/**
 * Payment notifications on PostgreSQL (the transaction of ../notify.ts): the id under its primary
 * key and the state change in ONE transaction, so a duplicate — delivered to this relay or to
 * another one sharing the database — stops at the insert and the order changes exactly once.
 *
 * Group commit, as on SQLite: every change transaction holds the feed lock (core.ts) until its
 * commit is visible, so what a notification costs is mostly time under that lock — round trips and
 * the commit's flush. The notifications that arrive while this relay's previous batch is being
 * written go together in the next transaction: one lock, one NOTIFY, one commit for all of them,
 * and one statement per notification (insert the id, change the order, index the transaction ids).
 * A notification refused inside the batch removes its own id again (nothing of it is kept); a batch
 * that fails as a whole is retried one notification per transaction, so one bad apple cannot fail
 * the others.
 */
import type { NotificationsRepo, PaymentApplyResult, PaymentNotification, SubOrderRow } from '../repo-types';
import type { PgCore, Tx } from './core';
import { execOf, SQL_ROW, SQL_SUBS, toOrderRow } from './orders';

/** Notifications in one transaction at most (a longer queue waits for the next one). */
const MAX_BATCH = 64;

/**
 * Fast path in one statement: the id (a duplicate inserts nothing and changes nothing), then the
 * order only when it is non-final, another state, and its sub-orders equal the notification's
 * ($11, sub_key), then its transaction ids for number search. Cursors are drawn here, under the
 * feed lock the transaction took first.
 */
const APPLY = `WITH ins AS (
    INSERT INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES ($1, $2, $3, $4, 0)
    ON CONFLICT (id) DO NOTHING RETURNING id),
  upd AS (
    UPDATE orders SET state = $5, paid_at = $6, paid_ms = $7, closed_at = $8, version = version + 1, updated_ms = $9,
      cursor = nextval('change_cursor'),
      paid_via = CASE WHEN $5 = 'SUCCESS' THEN 'notification' ELSE paid_via END,
      transaction_ids = CASE WHEN $10::text IS NULL THEN transaction_ids ELSE (COALESCE(transaction_ids, '{}')::jsonb || $10::jsonb)::text END
    WHERE combine_out_trade_no = $2 AND $11::text IS NOT NULL AND sub_key = $11
      AND state IN ('NOTPAY','USERPAYING') AND state != $5 AND EXISTS (SELECT 1 FROM ins)
    RETURNING combine_out_trade_no),
  txi AS (
    INSERT INTO order_transactions (transaction_id, combine_out_trade_no)
    SELECT unnest($12::text[]), combine_out_trade_no FROM upd ON CONFLICT DO NOTHING)
  SELECT (SELECT count(*) FROM ins)::int AS inserted, (SELECT count(*) FROM upd)::int AS changed`;

interface Pending {
  n: PaymentNotification;
  resolve: (r: PaymentApplyResult) => void;
  reject: (err: unknown) => void;
}

export class PgNotifications implements NotificationsRepo {
  private queue: Pending[] = [];
  private writing = false;

  constructor(private readonly core: PgCore) {}

  applyPayment(n: PaymentNotification): Promise<PaymentApplyResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ n, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  /** One batch at a time; whatever queued meanwhile is the next batch. */
  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, MAX_BATCH);
        let results: PaymentApplyResult[];
        try {
          results = await this.core.tx((t) => this.applyAll(t, batch.map((p) => p.n)), { feed: true });
        } catch (err) {
          if (batch.length === 1) {
            batch[0]!.reject(err);
            continue;
          }
          // Retried one by one: only the notification that fails is answered with the error.
          for (const p of batch) {
            try {
              p.resolve((await this.core.tx((t) => this.applyAll(t, [p.n]), { feed: true }))[0]!);
            } catch (e) {
              p.reject(e);
            }
          }
          continue;
        }
        batch.forEach((p, i) => p.resolve(results[i]!));
      }
    } finally {
      this.writing = false;
    }
  }

  private async applyAll(t: Tx, batch: PaymentNotification[]): Promise<PaymentApplyResult[]> {
    const exec = execOf(t.c);
    const out: PaymentApplyResult[] = [];
    let changedAny = false;
    for (const n of batch) {
      const now = Date.now();
      const tr = n.transition;
      const paidMs = tr.state === 'SUCCESS' ? (tr.paidMs ?? now) : null;
      const ids: [string, string][] = [];
      for (const [k, v] of tr.transactionIds ?? []) if (v) ids.push([k, v]);
      const [r] = await exec<{ inserted: number; changed: number }>(APPLY, [
        n.id, n.no, n.eventType, new Date(now).toISOString(),
        tr.state, paidMs === null ? null : new Date(paidMs).toISOString(), paidMs,
        tr.state === 'CLOSED' ? new Date(now).toISOString() : null, now,
        ids.length ? JSON.stringify(Object.fromEntries(ids)) : null,
        n.key, ids.map(([, id]) => id),
      ], 'notify_apply');
      if (r!.inserted === 0) {
        out.push({ kind: 'duplicate' });
        continue;
      }
      if (r!.changed === 1) {
        changedAny = true;
        out.push({ kind: 'applied', changed: true, state: tr.state });
        continue;
      }
      // It changed nothing: already final (keep the id), or a mismatch / unknown order (the id is
      // removed again: nothing of a refused notification is kept).
      const [row] = await exec(SQL_ROW, [n.no], 'orders_row');
      const subs = await exec<SubOrderRow>(SQL_SUBS, [n.no], 'orders_subs');
      const refusal: PaymentApplyResult | null = !row || subs.length === 0 ? { kind: 'unknown' } : (() => {
        const m = n.check(toOrderRow(row), subs);
        return m ? { kind: 'mismatch', alertKind: m.alertKind, message: m.message } : null;
      })();
      if (refusal) {
        await exec('DELETE FROM notifications WHERE id = $1', [n.id], 'notify_forget');
        out.push(refusal);
      } else {
        out.push({ kind: 'applied', changed: false, state: tr.state });
      }
    }
    // One NOTIFY for the batch, delivered with its commit.
    if (changedAny) await t.notifyFeed();
    return out;
  }
}
