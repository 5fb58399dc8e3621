/**
 * Payment notifications on PostgreSQL (the transaction of ../notify.ts): the id under its primary
 * key and the state change in ONE transaction, so a duplicate — delivered to this relay or to
 * another one sharing the database — stops at the insert (it waits for the first one's commit or
 * rollback) and the order changes exactly once.
 */
import type { NotificationsRepo, PaymentApplyResult, PaymentNotification, SubOrderRow } from '../repo-types';
import type { PgCore } from './core';
import { applyTransition, execOf, SQL_ROW, SQL_SUBS, toOrderRow } from './orders';

/** Thrown inside the transaction to roll it back (the id is not kept) with an answer. */
class Refused extends Error {
  constructor(readonly result: PaymentApplyResult) {
    super(result.kind);
  }
}

export class PgNotifications implements NotificationsRepo {
  constructor(private readonly core: PgCore) {}

  async applyPayment(n: PaymentNotification): Promise<PaymentApplyResult> {
    try {
      return await this.core.tx(async (t) => {
        const exec = execOf(t.c);
        const now = Date.now();
        // The id first (the deadlock rule in core.ts allows this one insert before the feed lock).
        const ins = await exec('INSERT INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES ($1, $2, $3, $4, 0) ON CONFLICT (id) DO NOTHING RETURNING id',
          [n.id, n.no, n.eventType, new Date(now).toISOString()], 'notify_insert');
        if (ins.length === 0) return { kind: 'duplicate' } as const;
        await t.lockFeed();
        // Fast path: one UPDATE that changes a non-final order whose sub-orders equal the key.
        if (n.key !== null && (await applyTransition(t, n.no, n.transition, now, n.key))) {
          return { kind: 'applied', changed: true, state: n.transition.state } as const;
        }
        // It changed nothing: already final (keep the id), or a mismatch / unknown order (roll back).
        const [row] = await exec(SQL_ROW, [n.no], 'orders_row');
        const subs = await exec<SubOrderRow>(SQL_SUBS, [n.no], 'orders_subs');
        if (!row || subs.length === 0) throw new Refused({ kind: 'unknown' });
        const refusal = n.check(toOrderRow(row), subs);
        if (refusal) throw new Refused({ kind: 'mismatch', alertKind: refusal.alertKind, message: refusal.message });
        return { kind: 'applied', changed: false, state: n.transition.state } as const;
      });
    } catch (err) {
      if (err instanceof Refused) return err.result;
      throw err;
    }
  }
}
