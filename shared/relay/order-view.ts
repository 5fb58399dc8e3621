/**
 * Rows → the contract's Order object, the same on every engine (refunds are added by
 * refund-view.ts), and the sub-order key a payment notification is matched by.
 */
import type { Order, SubOrder } from '../contracts/relay-api';
import type { OrderRow, SubOrderRow } from './repo-types';

/**
 * The sub-orders a notification must carry, as one comparable string: JSON of
 * [mchid, out_trade_no, amount] sorted by out_trade_no (JSON, so no field can spill into the
 * next). Same format as migration 4's SQL backfill.
 */
export function subKey(subs: readonly { mchid: unknown; out_trade_no: unknown; amount: unknown }[]): string {
  const sorted = [...subs].sort((a, b) => (String(a.out_trade_no) < String(b.out_trade_no) ? -1 : String(a.out_trade_no) > String(b.out_trade_no) ? 1 : 0));
  return JSON.stringify(sorted.map((x) => [x.mchid, x.out_trade_no, x.amount]));
}

/** The Order object of a row and its sub-orders (without refunds: see refund-view.ts). */
export function buildOrder(r: OrderRow, subs: readonly SubOrderRow[]): Order {
  const ids = r.transaction_ids ? (JSON.parse(r.transaction_ids) as Record<string, string>) : null;
  return {
    combine_out_trade_no: r.combine_out_trade_no,
    kind: r.kind ?? 'combine',
    state: r.state,
    total_amount: r.total_amount,
    description: r.description,
    code_url: r.code_url,
    created_at: r.created_at,
    expires_at: r.expires_at,
    paid_at: r.paid_at,
    closed_at: r.closed_at,
    terminal: r.terminal,
    sub_orders: subs.map((s): SubOrder => ({
      mchid: s.mchid,
      out_trade_no: s.out_trade_no,
      description: s.description,
      amount: s.amount,
      ...(s.attach !== null ? { attach: s.attach } : {}),
      transaction_id: ids?.[s.out_trade_no] ?? null,
      // All-or-nothing payment: a sub-order is always in its order's state.
      state: r.state,
    })),
    creation: r.creation,
    error_code: r.error_code,
    error_message: r.error_message,
    version: r.version,
  };
}