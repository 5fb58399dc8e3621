/**
 * PostgreSQL schema version 2: what the core repositories of issue 14 add.
 *
 * Number search (orders list `q`) is a prefix range per kind of number. The primary keys use the
 * database's collation, which under a real locale (en_US.UTF-8, …) cannot serve a `>= q AND < q||max`
 * range; these byte-order (COLLATE "C") expression indexes can, whatever locale the cluster has.
 */
export const SQL_V2 = `
  CREATE INDEX orders_no_c ON orders ((combine_out_trade_no COLLATE "C"));
  CREATE INDEX sub_orders_no_c ON sub_orders ((out_trade_no COLLATE "C"));
  CREATE INDEX order_transactions_id_c ON order_transactions ((transaction_id COLLATE "C"));
`;
