/**
 * PostgreSQL driver comparison for the relay (issue 14 item 2): node-postgres (`pg`, its Pool,
 * named prepared statements) against `postgres` (porsager; prepares automatically), in one run,
 * against a throwaway cluster (test/helpers/pg-cluster.ts) carrying the relay's schema.
 *
 * 1. The notification path's shape, 16 concurrent clients: one transaction inserts the
 *    notification id under its unique key and, only if new, moves the order row (conditional
 *    UPDATE taking a change cursor from the sequence) — ops/s and latency p50/p99.
 * 2. LISTEN/NOTIFY round trip (the cross-relay wake-up): NOTIFY sent through the pool, the time
 *    until the listening connection receives it — p50/p99, one notification in flight at a time.
 *
 * The server runs with fsync off by default so that the numbers show the drivers' cost (a
 * commit's fsync is the server's and the same for both); BENCH_PG_DURABLE=1 measures with
 * durable commits. BENCH_PG_OPS sets transactions per round (default 6000; two rounds each,
 * the drivers alternating), BENCH_PG_NOTIFIES the LISTEN/NOTIFY round trips (default 2000).
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import postgres from 'postgres';
import { startPgCluster } from '../test/helpers/pg-cluster';
import { migratePg, openPg } from '../shared/relay/pg/index';

const CLIENTS = 16;
const OPS = Number(process.env.BENCH_PG_OPS ?? 6000);
const NOTIFIES = Number(process.env.BENCH_PG_NOTIFIES ?? 2000);
const ROUNDS = 2;
const DURABLE = process.env.BENCH_PG_DURABLE === '1';

const INSERT_NOTIFICATION =
  "INSERT INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES ($1, $2, 'TRANSACTION.SUCCESS', $3, 1) ON CONFLICT (id) DO NOTHING";
const MARK_PAID = `UPDATE orders SET state = 'SUCCESS', paid_at = $2, paid_ms = $3, updated_ms = $3, version = version + 1,
  watch = 0, cursor = nextval('change_cursor'), paid_via = 'notify'
  WHERE combine_out_trade_no = $1 AND state IN ('NOTPAY','USERPAYING') RETURNING cursor, version`;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface TxResult {
  opsPerSec: number;
  p50: number;
  p99: number;
}
interface NotifyResult {
  p50: number;
  p99: number;
}

/** Runs `op(i)` for i in [from, from + n) on CLIENTS concurrent workers; latency per op. */
async function drive(from: number, n: number, op: (i: number) => Promise<void>): Promise<TxResult> {
  const lat: number[] = [];
  let next = from;
  const end = from + n;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < end) {
        const i = next++;
        const s = performance.now();
        await op(i);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { opsPerSec: n / secs, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const orderNo = (i: number) => `B${String(i).padStart(12, '0')}`;

async function seed(url: string, count: number): Promise<void> {
  const pool = openPg(url, { max: 1 });
  await migratePg(pool);
  const now = Date.now();
  // One INSERT … SELECT: the seed is not what is measured.
  await pool.query(
    `INSERT INTO orders (combine_out_trade_no, state, total_amount, created_at, created_ms, expires_at, expires_ms, updated_ms,
       terminal, creation, request_hash, request_json, next_check_ms)
     SELECT 'B' || lpad(g::text, 12, '0'), 'NOTPAY', 200, $1, $2::bigint, $1, $2::bigint + 1800000, $2::bigint, 'till-1', 'CREATED', 'h', '{}', $2::bigint + 30000
     FROM generate_series(0, $3::int - 1) g`,
    [new Date(now).toISOString(), now, count],
  );
  await pool.query('VACUUM ANALYZE orders');
  await pool.end();
}

function checkTransition(rows: unknown[], i: number): void {
  if (rows.length !== 1) throw new Error(`order ${orderNo(i)} did not move exactly once (${rows.length} rows)`);
}

async function pgTx(pool: pg.Pool, i: number): Promise<void> {
  const c = await pool.connect();
  try {
    const at = new Date().toISOString();
    await c.query('BEGIN');
    const ins = await c.query({ name: 'notif_insert', text: INSERT_NOTIFICATION, values: [`n-${i}`, orderNo(i), at] });
    if (ins.rowCount === 1) {
      const upd = await c.query({ name: 'order_paid', text: MARK_PAID, values: [orderNo(i), at, Date.now()] });
      checkTransition(upd.rows, i);
    }
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

async function porsagerTx(sql: postgres.Sql, i: number): Promise<void> {
  const at = new Date().toISOString();
  await sql.begin(async (tx) => {
    const ins = await tx.unsafe(INSERT_NOTIFICATION, [`n-${i}`, orderNo(i), at], { prepare: true });
    if (ins.count === 1) {
      const upd = await tx.unsafe(MARK_PAID, [orderNo(i), at, Date.now()], { prepare: true });
      checkTransition(upd as unknown as unknown[], i);
    }
  });
}

async function pgNotify(url: string, pool: pg.Pool): Promise<NotifyResult> {
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  let waiting: ((payload: string) => void) | null = null;
  listener.on('notification', (m) => waiting?.(m.payload ?? ''));
  await listener.query('LISTEN relay_bench');
  const lat: number[] = [];
  for (let k = 0; k < NOTIFIES; k++) {
    const payload = String(k);
    const got = new Promise<string>((r) => (waiting = r));
    const s = performance.now();
    await pool.query({ name: 'notify', text: 'SELECT pg_notify($1, $2)', values: ['relay_bench', payload] });
    if ((await got) !== payload) throw new Error('pg: notification out of order');
    lat.push(performance.now() - s);
  }
  await listener.end();
  lat.sort((a, b) => a - b);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function porsagerNotify(sql: postgres.Sql): Promise<NotifyResult> {
  let waiting: ((payload: string) => void) | null = null;
  const sub = await sql.listen('relay_bench', (payload) => waiting?.(payload));
  const lat: number[] = [];
  for (let k = 0; k < NOTIFIES; k++) {
    const payload = String(k);
    const got = new Promise<string>((r) => (waiting = r));
    const s = performance.now();
    await sql.notify('relay_bench', payload);
    if ((await got) !== payload) throw new Error('postgres: notification out of order');
    lat.push(performance.now() - s);
  }
  await sub.unlisten();
  lat.sort((a, b) => a - b);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

function merge(rs: TxResult[]): TxResult {
  // Throughput: total ops over total time; latency: the worse round (conservative).
  const time = rs.reduce((t, r) => t + OPS / r.opsPerSec, 0);
  return { opsPerSec: (OPS * rs.length) / time, p50: Math.max(...rs.map((r) => r.p50)), p99: Math.max(...rs.map((r) => r.p99)) };
}

const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);

async function main(): Promise<void> {
  const cluster = await startPgCluster({ database: 'driver_bench', durable: DURABLE });
  try {
    const warm = 500;
    await seed(cluster.url, 2 * warm + 2 * ROUNDS * OPS);
    const pool = new pg.Pool({ connectionString: cluster.url, max: CLIENTS });
    pool.on('error', () => {});
    const sql = postgres(cluster.url, { max: CLIENTS, onnotice: () => {} });
    let at = 0;
    // Warm both (connections opened, statements prepared) before anything is measured.
    await drive(at, warm, (i) => pgTx(pool, i));
    at += warm;
    await drive(at, warm, (i) => porsagerTx(sql, i));
    at += warm;
    const pgRounds: TxResult[] = [];
    const poRounds: TxResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      pgRounds.push(await drive(at, OPS, (i) => pgTx(pool, i)));
      at += OPS;
      poRounds.push(await drive(at, OPS, (i) => porsagerTx(sql, i)));
      at += OPS;
    }
    const moved = await pool.query("SELECT count(*)::int AS n FROM orders WHERE state = 'SUCCESS'");
    if (moved.rows[0].n !== at) throw new Error(`expected ${at} paid orders, found ${moved.rows[0].n}`);
    const a = merge(pgRounds);
    const b = merge(poRounds);
    const na = await pgNotify(cluster.url, pool);
    const nb = await porsagerNotify(sql);
    await pool.end();
    await sql.end();

    console.log(`server: PostgreSQL ${DURABLE ? 'durable (fsync on)' : 'fsync off (driver cost only)'}; ${CLIENTS} concurrent clients, ${ROUNDS}×${OPS} transactions per driver, ${NOTIFIES} LISTEN/NOTIFY round trips`);
    console.log('driver          notif tx ops/s   tx p50 ms   tx p99 ms   notify p50 ms   notify p99 ms');
    console.log(`pg (Pool)       ${f1(a.opsPerSec).padStart(14)}   ${f2(a.p50).padStart(9)}   ${f2(a.p99).padStart(9)}   ${f2(na.p50).padStart(13)}   ${f2(na.p99).padStart(13)}`);
    console.log(`postgres        ${f1(b.opsPerSec).padStart(14)}   ${f2(b.p50).padStart(9)}   ${f2(b.p99).padStart(9)}   ${f2(nb.p50).padStart(13)}   ${f2(nb.p99).padStart(13)}`);
    console.log(
      `ratio pg/postgres: ops/s ${f2(a.opsPerSec / b.opsPerSec)}, tx p99 ${f2(a.p99 / b.p99)}, notify p50 ${f2(na.p50 / nb.p50)}, notify p99 ${f2(na.p99 / nb.p99)} (ops/s: higher is better; latencies: lower)`,
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
