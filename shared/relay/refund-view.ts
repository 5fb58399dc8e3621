/**
 * How refunds show in an Order object (contract §2), the same on every engine: `refunds`, and per
 * sub-order `refunded_amount` (SUCCESS refunds: money back with the buyer) and the extension
 * `refundable_amount` (what a new refund may still take: paid minus what COUNTING refunds hold).
 * Pure: the engines read the rows, this builds the view.
 */
import type { Order, Refund } from '../contracts/relay-api';
import type { RefundRow } from './repo-refunds';

export function toRefund(r: RefundRow): Refund {
  return {
    out_refund_no: r.out_refund_no,
    order: r.combine_out_trade_no,
    out_trade_no: r.out_trade_no,
    mchid: r.mchid,
    amount: r.amount,
    reason: r.reason,
    // PENDING (recorded, not yet confirmed) shows as PROCESSING; FAILED rows are never passed here.
    status: r.status === 'PENDING' || r.status === 'FAILED' ? 'PROCESSING' : r.status,
    refund_id: r.refund_id,
    created_at: r.created_at,
    success_time: r.success_time,
    terminal: r.terminal,
    error_code: r.error_code,
  };
}

/**
 * `rows`: the order's refunds except FAILED ones, oldest first (created_ms, out_refund_no). Only a
 * paid order can have refunds: for any other pass [].
 */
export function decorateRefunds(order: Order, rows: readonly RefundRow[]): void {
  order.refunds = rows.map(toRefund);
  for (const sub of order.sub_orders) {
    let done = 0;
    let taken = 0;
    for (const r of rows) {
      if (r.out_trade_no !== sub.out_trade_no) continue;
      if (r.status === 'SUCCESS') done += r.amount;
      if (r.status !== 'CLOSED') taken += r.amount;
    }
    sub.refunded_amount = done;
    sub.refundable_amount = order.state === 'SUCCESS' ? sub.amount - taken : 0;
  }
}
