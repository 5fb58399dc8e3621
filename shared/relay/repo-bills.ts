/**
 * The bills part of the store seam (repo-types.ts): one implementation per engine
 * (sqlite/bills.ts, pg/bills.ts). Filled in by the bills work of issue 14.
 */
export interface BillsRepo {}
