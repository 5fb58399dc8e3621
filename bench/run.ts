/**
 * `npm run bench`: runs every bench/*.bench.ts in its own process (relay-events: many terminals
 * connecting while notifications arrive; relay-history: every screen's route on 3,000,000 orders;
 * pg-driver: node-postgres against postgres on a throwaway PostgreSQL cluster; relay-pg: notifications/s
 * and p99 on SQLite, on PostgreSQL, and two relays on one PostgreSQL, plus push latency across relays)
 * (so peak RSS and CPU of one do not colour the next), in name order, or only those whose names
 * contain an argument.
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// `NAME=VALUE` arguments go to every benchmark's environment (e.g. BENCH_HISTORY_ORDERS=100000
// for relay-history's store size, 3,000,000 by default); the others filter by file name.
const filters = process.argv.slice(2).filter((a) => !a.includes('='));
const env = { ...process.env, ...Object.fromEntries(process.argv.slice(2).filter((a) => a.includes('=')).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)])) };
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f} ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', join(here, f)], { stdio: 'inherit', env });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
