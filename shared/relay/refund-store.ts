/**
 * Refunds' storage moved behind the store seam (issue 14): the types and rules are in
 * repo-refunds.ts, the engines in sqlite/refunds.ts and pg/refunds.ts. Re-exported here for the
 * modules that still import them from this path.
 */
export {
  COUNTING, COUNTING_STATUSES, FINAL_REFUND, RANK,
  type LocalRefundStatus, type NewRefund, type RefundRow, type RefundUpdate,
} from './repo-refunds';
export { toRefund } from './refund-view';
export { newOutRefundNo } from './refunds';
