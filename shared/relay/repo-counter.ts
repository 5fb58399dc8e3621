/**
 * The counter part of the store seam (repo-types.ts): one implementation per engine
 * (sqlite/counter.ts, pg/counter.ts). Filled in by the counter work of issue 14.
 */
export interface CounterRepo {}
