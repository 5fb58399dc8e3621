/**
 * PostgreSQL schema version 5: what the bills repository (pg/bills.ts) needs.
 *
 * The day's local side of a bill run walks paid orders in keyset pages of (paid_ms, order
 * number) and the day's refunds in pages of (created_ms, out_refund_no): PostgreSQL has no rowid
 * to break ties with, so the tie-breaker joins the index and each page is an index range read,
 * O(page) whatever the history. The indexes keep their names (the SQLite schema's, which
 * pg-migrate.test.ts compares) and still serve every query on their leading column (takings,
 * reports, refund lists), so no second index is written per payment.
 */
export const SQL_V5 = `
  DROP INDEX orders_paid_success;
  CREATE INDEX orders_paid_success ON orders (paid_ms, combine_out_trade_no) WHERE state = 'SUCCESS';
  DROP INDEX refunds_created;
  CREATE INDEX refunds_created ON refunds (created_ms, out_refund_no);
`;
