/**
 * The relay on PostgreSQL (issue 14 benchmark), in one run:
 *   push latency while notifications arrive at relay A at a steady rate: from posting one to its
 *   `order.updated` on terminals of relay B (across relays; target p99 < 50 ms), with terminals on
 *   A beside them for comparison (measured first, on a quiet cluster);
 *   notification throughput and answer latency, the load of bench/relay.bench.ts (autocannon,
 *   16 connections, signed and encrypted TRANSACTION.SUCCESS notifications for orders seeded
 *   first, distinct until they run out, then duplicates) against
 *     (i)   one relay on SQLite (RELAY_DB),
 *     (ii)  one relay on PostgreSQL (RELAY_DATABASE_URL),
 *     (iii) two relays on the same PostgreSQL database, the connections split over both.
 *
 * Every relay is the real CLI in its own process with production settings (info logs, to a
 * discarded stderr). PostgreSQL is a throwaway cluster from test/helpers/pg-cluster.ts with
 * durable commits (fsync on, synchronous_commit on): nothing unsafe is tuned. One machine runs
 * everything (load generator, relays, database), so two relays share its cores with the rest:
 * the figures say what this machine does, not what two servers would.
 *
 * `npm run bench -- relay-pg`; BENCH_DURATION_S (5), BENCH_ORDERS (10000), BENCH_PUSH_RATE (50/s),
 * BENCH_PUSH_SECONDS (6), BENCH_ONLY (sqlite,one,two,push: only those parts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPrivateKey, randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import pg from 'pg';
import { initSandbox } from '../shared/sandbox/index';
import { loadCredentials } from '../shared/wechatpay/credentials';
import { apiV3Key, encryptResource } from '../shared/wechatpay/aead';
import { signBody } from '../shared/wechatpay/sign';
import { openDb } from '../shared/relay/db';
import { newCombineOutTradeNo, subOutTradeNo } from '../shared/relay/ids';
import { subKey } from '../shared/relay/order-view';
import { addTerminal, loadRelayConfig } from '../shared/relay/index';
import { migratePg, openPg } from '../shared/relay/pg/index';
import { pacedNotify } from './paced-notify';
import { startPgCluster, type PgCluster } from '../test/helpers/pg-cluster';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const CONNECTIONS = 16;
const ORDERS = Number(process.env.BENCH_ORDERS ?? 10_000);
// Within what two relays on PostgreSQL sustain here (see (iii)): above it, latency is queueing.
const PUSH_RATE = Number(process.env.BENCH_PUSH_RATE ?? 50);
const PUSH_SECONDS = Number(process.env.BENCH_PUSH_SECONDS ?? 6);
/** Terminals per relay in the push measurement (each its own token: a terminal has few sockets). */
const TERMINALS = 5;
const PUSH_TARGET_P99_MS = 50;
const CLI = join(process.cwd(), 'shared/relay/cli.ts');
/** BENCH_ONLY=sqlite,one,two,push runs only those parts. */
const ONLY = process.env.BENCH_ONLY?.split(',');
const wanted = (part: string) => !ONLY || ONLY.includes(part);

// ─── seeding: NOTPAY orders written straight into the store, the same rows on both engines ───

interface Seeded { no: string; subs: { mchid: string; out_trade_no: string; amount: number }[] }

const ORDER_COLUMNS = ['combine_out_trade_no', 'kind', 'state', 'total_amount', 'description', 'created_at', 'created_ms', 'expires_at', 'expires_ms',
  'updated_ms', 'terminal', 'creation', 'idempotency_key', 'request_hash', 'request_json', 'watch', 'next_check_ms', 'sub_key'] as const;
const SUB_COLUMNS = ['out_trade_no', 'combine_out_trade_no', 'idx', 'mchid', 'description', 'amount', 'attach', 'state'] as const;

function makeOrders(n: number, mchids: string[]): { orders: Seeded[]; rows: unknown[][]; subRows: unknown[][] } {
  const now = Date.now();
  const orders: Seeded[] = [];
  const rows: unknown[][] = [];
  const subRows: unknown[][] = [];
  for (let i = 0; i < n; i++) {
    const no = newCombineOutTradeNo(now);
    const subs = [0, 1].map((idx) => ({ mchid: mchids[idx]!, out_trade_no: subOutTradeNo(no, idx), amount: 100 + idx + (i % 50) }));
    // Created an hour ago and not watched: the reconciler leaves them alone during the run.
    rows.push([no, 'combine', 'NOTPAY', subs[0]!.amount + subs[1]!.amount, null, new Date(now).toISOString(), now, new Date(now + 3_600_000).toISOString(), now + 3_600_000,
      now - 3_600_000, 'bench', 'CREATED', null, 'x', '', 0, now + 3_600_000, subKey(subs)]);
    subs.forEach((s, idx) => subRows.push([s.out_trade_no, no, idx, s.mchid, '商品', s.amount, null, 'NOTPAY']));
    orders.push({ no, subs });
  }
  return { orders, rows, subRows };
}

function seedSqlite(path: string, seed: ReturnType<typeof makeOrders>): void {
  const db = openDb(path); // creates the schema
  const ins = db.prepare(`INSERT INTO orders (${ORDER_COLUMNS.join(',')}) VALUES (${ORDER_COLUMNS.map(() => '?').join(',')})`);
  const sub = db.prepare(`INSERT INTO sub_orders (${SUB_COLUMNS.join(',')}) VALUES (${SUB_COLUMNS.map(() => '?').join(',')})`);
  db.transaction(() => {
    for (const r of seed.rows) ins.run(...r);
    for (const r of seed.subRows) sub.run(...r);
  })();
  db.close();
}

async function seedPg(pool: pg.Pool, seed: ReturnType<typeof makeOrders>): Promise<void> {
  await migratePg(pool);
  const insert = async (table: string, cols: readonly string[], rows: unknown[][]) => {
    for (let i = 0; i < rows.length; i += 500) {
      const batch = rows.slice(i, i + 500);
      const values = batch.map((_, r) => `(${cols.map((_, c) => `$${r * cols.length + c + 1}`).join(',')})`).join(',');
      await pool.query(`INSERT INTO ${table} (${cols.join(',')}) VALUES ${values}`, batch.flat());
    }
  };
  await insert('orders', ORDER_COLUMNS, seed.rows);
  await insert('sub_orders', SUB_COLUMNS, seed.subRows);
  await pool.query('ANALYZE');
}

// ─── notifications, as WeChat Pay (the sandbox's key) signs and encrypts them ───

interface Note { no: string; headers: Record<string, string>; body: string }

function buildNotes(dir: string, orders: Seeded[]): Note[] {
  const cfg = JSON.parse(readFileSync(join(dir, 'sandbox', 'sandbox.json'), 'utf8'));
  const key = createPrivateKey(readFileSync(join(dir, 'sandbox', cfg.public_key_file)));
  const v3 = apiV3Key(cfg.apiv3_key);
  return orders.map((o) => {
    const resource = {
      combine_appid: cfg.appid, combine_mchid: cfg.mchid, combine_out_trade_no: o.no, combine_payer_info: { openid: 'oBench' },
      sub_orders: o.subs.map((s, i) => ({
        mchid: s.mchid, trade_type: 'NATIVE', trade_state: 'SUCCESS', bank_type: 'OTHERS', attach: o.no, success_time: '2026-01-01T12:00:00+08:00',
        transaction_id: `42000${i}${o.no.slice(1)}`, out_trade_no: s.out_trade_no, amount: { total_amount: s.amount, currency: 'CNY', payer_amount: s.amount, payer_currency: 'CNY' },
      })),
    };
    const body = JSON.stringify({
      id: randomUUID(), create_time: '2026-01-01T12:00:00+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
      resource: { original_type: 'transaction', ...encryptResource(JSON.stringify(resource), v3, 'transaction') },
    });
    return { no: o.no, headers: { 'content-type': 'application/json', ...signBody(key, cfg.public_key_id, body) }, body };
  });
}

// ─── relay processes ───

interface Relay { proc: ChildProcess; url: string }

function relayEnv(dir: string, store: { db: string } | { url: string }): Record<string, string> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    WECHATPAY_CREDENTIALS_DIR: join(dir, 'merchant'), WECHATPAY_BASE_URL: 'http://127.0.0.1:9', RELAY_PUBLIC_URL: 'http://127.0.0.1:9',
    RELAY_PORT: '0', RELAY_QUERY_AFTER_SECONDS: '3600', RELAY_LOG_LEVEL: process.env.BENCH_RELAY_LOG ?? 'info',
  };
  delete env.RELAY_DATABASE_URL;
  delete env.RELAY_DB;
  if ('db' in store) env.RELAY_DB = store.db;
  else env.RELAY_DATABASE_URL = store.url;
  return env;
}

/** The relay CLI; resolves with the URL of its "listening" line. */
function startRelay(env: Record<string, string>): Promise<Relay> {
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d) => {
    // Only the tail, for a start failure: info logs would otherwise pile up here.
    err = (err + d).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        proc.stdout!.off('data', onData);
        proc.stdout!.resume();
        resolve({ proc, url: JSON.parse(line).url });
      }
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`relay exited ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`)));
  });
}

/** CPU seconds the process has used (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

async function stopRelay(r: Relay): Promise<void> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return;
  const done = new Promise((res) => r.proc.once('exit', res));
  r.proc.kill('SIGTERM');
  await done;
}

// ─── load ───

interface Load { rps: number; p50: number; p99: number; non2xx: number; errors: number; total: number }

async function load(urls: string[], notes: Note[], opts: { duration?: number; amount?: number }): Promise<Load> {
  // autocannon ships no type declarations: imported untyped.
  const autocannon = (await import('autocannon' as string)).default;
  let i = 0;
  const r = await autocannon({
    // Several URLs: autocannon spreads the connections over them (an even split here).
    url: urls.length === 1 ? urls[0] : urls,
    connections: CONNECTIONS,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration }),
    requests: [{
      method: 'POST',
      setupRequest: (req: Record<string, unknown>) => {
        const n = notes[i++ % notes.length]!;
        return { ...req, method: 'POST', path: '/wechatpay/notify', headers: n.headers, body: n.body };
      },
    }],
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

async function throughput(label: string, relays: Relay[], notes: Note[], paid: () => Promise<number>): Promise<Load & { cpuPerReq: number }> {
  const urls = relays.map((r) => r.url);
  const warm = await load(urls, notes.slice(0, 300), { amount: 600 }); // JIT, pools, connections; these turn into duplicates later
  const cpu0 = relays.reduce((s, r) => s + cpuSeconds(r.proc.pid), 0);
  const r = await load(urls, notes, { duration: DURATION_S });
  const cpu = relays.reduce((s, x) => s + cpuSeconds(x.proc.pid), 0) - cpu0;
  const cpuPerReq = (cpu * 1e6) / r.total;
  const n = await paid();
  console.log(`${label.padEnd(34)} ${r.rps.toFixed(0).padStart(6)} notifications/s  p50 ${r.p50} ms  p99 ${r.p99} ms  relay CPU ${cpuPerReq.toFixed(0)} µs/notification  non2xx ${r.non2xx + warm.non2xx}  errors ${r.errors + warm.errors}  orders paid ${n}`);
  return { ...r, cpuPerReq };
}

interface PushResult {
  rate: number;
  /** Post → the relay's answer (its commit included), ms, sorted. */
  answered: number[];
  /** Per side ('A', 'B'): post → order.updated SUCCESS on a terminal, and answer → that push, ms, sorted. */
  sides: Map<string, { fromPost: number[]; fromAnswer: number[]; missing: number }>;
}

/**
 * Notifications posted to `to` at PUSH_RATE; when each order's SUCCESS reaches each socket.
 * Measured from the post (what a cashier waits for) and from the relay's answer (the push path
 * alone: feed read, NOTIFY to the other relay, WebSocket), so a slow commit is told from a slow push.
 */
async function pushLatency(to: Relay, sockets: { ws: WebSocket; where: string }[], notes: Note[]): Promise<PushResult> {
  const sent = new Map<string, number>();
  const answeredAt = new Map<string, number>();
  const received: { where: string; no: string; at: number }[] = [];
  for (const s of sockets) {
    s.ws.on('message', (data) => {
      const at = performance.now();
      const text = String(data);
      if (!text.startsWith('{"type":"order.updated"')) return;
      const m = JSON.parse(text);
      if (m.order.state === 'SUCCESS' && sent.has(m.order.combine_out_trade_no)) received.push({ where: s.where, no: m.order.combine_out_trade_no, at });
    });
  }
  const paced = await pacedNotify(to.url, notes, PUSH_RATE, PUSH_SECONDS, {
    sent: (no, at) => sent.set(no, at),
    answered: (no, at) => answeredAt.set(no, at),
  });
  const { rate } = paced;
  // Stragglers: wait (bounded) until every socket has every measured payment.
  const expected = paced.measured * sockets.length;
  const deadline = performance.now() + 5000;
  while (received.length < expected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const sorted = (xs: number[]) => xs.sort((p, q) => p - q);
  const sides = new Map<string, { fromPost: number[]; fromAnswer: number[]; missing: number }>();
  for (const where of new Set(sockets.map((s) => s.where))) {
    const mine = received.filter((r) => r.where === where);
    sides.set(where, {
      fromPost: sorted(mine.map((r) => r.at - sent.get(r.no)!)),
      fromAnswer: sorted(mine.map((r) => r.at - (answeredAt.get(r.no) ?? NaN))),
      missing: paced.measured * sockets.filter((s) => s.where === where).length - mine.length,
    });
  }
  return { rate, answered: sorted([...sent].map(([no, t]) => (answeredAt.get(no) ?? NaN) - t)), sides };
}

function connectAll(url: string, tokens: string[], where: string): Promise<{ ws: WebSocket; where: string }[]> {
  return Promise.all(tokens.map((token) => new Promise<{ ws: WebSocket; where: string }>((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/v1/events', { headers: { Authorization: `Bearer ${token}` } });
    ws.once('open', () => resolve({ ws, where }));
    ws.once('error', reject);
  })));
}

// ─── main ───

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-pg-bench-'));
  let cluster: PgCluster | null = null;
  const running: Relay[] = [];
  const pools: pg.Pool[] = [];
  let failed = 0;
  try {
    console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at start (everything below shares these cores)`);
    await initSandbox(dir);
    const mchids = loadCredentials(join(dir, 'merchant')).subMerchants.map((s) => s.mchid);
    let t = performance.now();
    cluster = await startPgCluster({ database: 'bench_one', durable: true });
    console.log(`PostgreSQL: throwaway cluster, durable commits (fsync on), started in ${((performance.now() - t) / 1000).toFixed(1)}s`);
    t = performance.now();
    const seeds = { sqlite: makeOrders(ORDERS, mchids), one: makeOrders(ORDERS, mchids), two: makeOrders(ORDERS, mchids), push: makeOrders(PUSH_RATE * (PUSH_SECONDS + 1), mchids) };
    const sqlitePath = join(dir, 'relay.db');
    seedSqlite(sqlitePath, seeds.sqlite);
    const urls = { one: cluster.url, two: await cluster.createDatabase('bench_two'), push: await cluster.createDatabase('bench_push') };
    for (const k of ['one', 'two', 'push'] as const) {
      const pool = openPg(urls[k], { max: 4, applicationName: 'bench' });
      pools.push(pool);
      await seedPg(pool, seeds[k]);
    }
    const [poolOne, poolTwo, poolPush] = pools as [pg.Pool, pg.Pool, pg.Pool];
    const notes = { sqlite: buildNotes(dir, seeds.sqlite.orders), one: buildNotes(dir, seeds.one.orders), two: buildNotes(dir, seeds.two.orders), push: buildNotes(dir, seeds.push.orders) };
    console.log(`setup: ${3 * ORDERS + seeds.push.orders.length} orders seeded and signed notifications built in ${((performance.now() - t) / 1000).toFixed(1)}s`);
    console.log(`throughput: autocannon ${CONNECTIONS} connections × ${DURATION_S}s per setup; ${ORDERS} distinct notifications, then repeats (duplicates)`);

    const pgPaid = (pool: pg.Pool) => async () => Number((await pool.query("SELECT COUNT(*) AS n FROM orders WHERE state = 'SUCCESS'")).rows[0].n);
    const results: Record<string, Load & { cpuPerReq: number }> = {};
    // One setup failing (say, PostgreSQL serving not wired yet) is printed and the others still run.
    const step = async (label: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        failed++;
        console.log(`${label}: FAILED: ${(err as Error).message}`);
      }
    };
    const run = async (label: string, key: string, env: Record<string, string>, count: number, n: Note[], paid: () => Promise<number>) => wanted(key) && step(label, async () => {
      const relays: Relay[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const r = await startRelay(env);
          relays.push(r);
          running.push(r);
        }
        results[key] = await throughput(label, relays, n, paid);
      } finally {
        await Promise.all(relays.map(stopRelay));
      }
    });

    // Push latency across relays first, on a quiet cluster (not in the wake of the saturating
    // throughput runs): terminals on A and on B, notifications to A at a steady rate.
    if (wanted('push')) await step('push latency', async () => {
      const config = loadRelayConfig({ ...relayEnv(dir, { url: urls.push }) });
      const tokens: string[] = [];
      for (let i = 0; i < 2 * TERMINALS; i++) tokens.push(await addTerminal(config, `bench-push-${i}`, 'cashier'));
      const a = await startRelay(relayEnv(dir, { url: urls.push }));
      running.push(a);
      const b = await startRelay(relayEnv(dir, { url: urls.push }));
      running.push(b);
      const sockets = [...(await connectAll(a.url, tokens.slice(0, TERMINALS), 'A')), ...(await connectAll(b.url, tokens.slice(TERMINALS), 'B'))];
      const push = await pushLatency(a, sockets, notes.push);
      for (const s of sockets) s.ws.close();
      await Promise.all([a, b].map(stopRelay));
      const paidPush = await pgPaid(poolPush)();
      console.log(`push latency, notifications to relay A at ${push.rate.toFixed(0)}/s for ${PUSH_SECONDS}s, ${TERMINALS} terminals on each relay (orders paid ${paidPush}):`);
      console.log(`  relay A answered each notification (commit included): p50 ${pct(push.answered, 50).toFixed(2)} ms  p99 ${pct(push.answered, 99).toFixed(2)} ms`);
      for (const [where, label] of [['A', 'same relay    (A → terminal on A)'], ['B', 'across relays (A → terminal on B)']] as const) {
        const x = push.sides.get(where)!;
        const p99 = pct(x.fromPost, 99);
        const verdict = where === 'B' ? `  target p99 < ${PUSH_TARGET_P99_MS} ms: ${p99 < PUSH_TARGET_P99_MS && x.missing === 0 ? 'met' : 'MISSED'}` : '';
        console.log(`  ${label}: from the post p50 ${pct(x.fromPost, 50).toFixed(2)} ms  p99 ${p99.toFixed(2)} ms  max ${(x.fromPost.at(-1) ?? NaN).toFixed(2)} ms;`
          + ` from the answer p50 ${pct(x.fromAnswer, 50).toFixed(2)} ms  p99 ${pct(x.fromAnswer, 99).toFixed(2)} ms  (${x.fromPost.length} deliveries, ${x.missing} missing)${verdict}`);
      }
    });

    await run('(i)   one relay, SQLite', 'sqlite', relayEnv(dir, { db: sqlitePath }), 1, notes.sqlite, async () => {
      const db = new Database(sqlitePath, { readonly: true });
      try {
        return (db.prepare("SELECT COUNT(*) AS n FROM orders WHERE state = 'SUCCESS'").get() as { n: number }).n;
      } finally {
        db.close();
      }
    });
    await run('(ii)  one relay, PostgreSQL', 'one', relayEnv(dir, { url: urls.one }), 1, notes.one, pgPaid(poolOne));
    await run('(iii) two relays, one PostgreSQL', 'two', relayEnv(dir, { url: urls.two }), 2, notes.two, pgPaid(poolTwo));
    if (results.sqlite && results.one) console.log(`ratio PostgreSQL/SQLite, one relay: ${(results.one.rps / results.sqlite.rps).toFixed(2)}`);
    if (results.one && results.two) console.log(`ratio two relays/one relay on PostgreSQL: ${(results.two.rps / results.one.rps).toFixed(2)}`);

  } finally {
    await Promise.all(running.map(stopRelay));
    await Promise.all(pools.map((p) => p.end().catch(() => {})));
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
