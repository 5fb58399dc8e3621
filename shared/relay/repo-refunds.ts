/**
 * The refunds part of the store seam (repo-types.ts): one implementation per engine
 * (sqlite/refunds.ts, pg/refunds.ts). Filled in by the refunds work of issue 14.
 */
export interface RefundsRepo {}
