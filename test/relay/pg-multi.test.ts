/**
 * Two relays on ONE PostgreSQL database (issue 14), in this process, against one sandbox:
 * changes cross relays, a notification applies once whichever relay gets it, a terminal resumes
 * on the other relay from its cursor, idempotency keys and tokens hold across relays, and the two
 * reconcilers never query or close one order at the same time.
 *
 * Every test gets a fresh database (and its own pair of relays); the cluster and the sandbox are
 * shared by the file. No sleeps: waits are for pushed messages or for the relays' own answers.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { initSandbox, startSandbox } from '../../shared/sandbox/index';
import { addTerminal, loadRelayConfig, startRelay, type RelayConfig, type RelayHandle } from '../../shared/relay/index';
import { migratePg, openPg } from '../../shared/relay/pg/index';
import type { Order, RelayEvent } from '../../shared/contracts/relay-api';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { api, EventsClient, until, type Env } from './env';
import { NotificationForge, post } from './forge';

let cluster: PgCluster;
let dir: string;
let merchantDir: string;
let sandbox: { url: string; close(): Promise<void> };
let forge: NotificationForge;
let mchids: string[];
let databases = 0;

beforeAll(async () => {
  cluster = await startPgCluster();
  dir = mkdtempSync(join(tmpdir(), 'relay-pg-multi-'));
  ({ merchantDir } = await initSandbox(dir));
  // The sandbox's own 5-minute close rule is off: the relays' reconcilers decide when to close.
  sandbox = await startSandbox({ dir, port: 0, timeScale: 600, closeMinAgeSeconds: 0 });
  forge = new NotificationForge(dir);
  mchids = JSON.parse(readFileSync(join(merchantDir, 'merchant.json'), 'utf8')).sub_merchants.map((s: { mchid: string }) => s.mchid);
}, 60_000);

afterAll(async () => {
  await sandbox?.close();
  await cluster?.stop();
});

/** Two relays on one fresh, migrated database, with a cashier and a manager terminal. */
interface Pair {
  a: RelayHandle;
  b: RelayHandle;
  config: RelayConfig;
  db: pg.Pool;
  cashier: string;
  manager: string;
}

const open: { pairs: Pair[]; sockets: EventsClient[] } = { pairs: [], sockets: [] };

afterEach(async () => {
  for (const s of open.sockets.splice(0)) s.close();
  for (const p of open.pairs.splice(0)) {
    await Promise.allSettled([p.a.close(), p.b.close()]);
    await p.db.end();
  }
});

async function startPair(env: Record<string, string> = {}): Promise<Pair> {
  const url = await cluster.createDatabase(`multi_${++databases}`);
  const db = openPg(url, { max: 2 });
  await migratePg(db);
  const config = loadRelayConfig({
    WECHATPAY_CREDENTIALS_DIR: merchantDir,
    WECHATPAY_BASE_URL: sandbox.url,
    RELAY_PUBLIC_URL: 'http://127.0.0.1', // replaced by each relay's listening URL
    RELAY_PORT: '0',
    RELAY_DATABASE_URL: url,
    RELAY_QUERY_AFTER_SECONDS: '3600',
    RELAY_RECONCILE_TICK_MS: '100',
    RELAY_LOG_LEVEL: process.env.RELAY_TEST_LOG ?? 'silent',
    ...env,
  });
  // awaited: on PostgreSQL addTerminal writes to the database (a Promise); on SQLite it is a string.
  const cashier = await addTerminal(config, 'till-1', 'cashier');
  const manager = await addTerminal(config, 'boss', 'manager');
  const a = await startRelay(config, { publicUrlFromListen: true });
  const b = await startRelay(config, { publicUrlFromListen: true }).catch(async (err) => {
    await a.close();
    throw err;
  });
  const p = { a, b, config, db, cashier, manager };
  open.pairs.push(p);
  return p;
}

async function connect(relayUrl: string, token: string, since?: number): Promise<EventsClient> {
  const c = await EventsClient.connect({ relayUrl } as Env, token, since);
  open.sockets.push(c);
  return c;
}

async function createOrder(relayUrl: string, token: string, headers: Record<string, string> = {}, amount = 2800): Promise<Order> {
  const body = { description: '测试订单', sub_orders: [{ mchid: mchids[0]!, description: '面', amount }, { mchid: mchids[1]!, description: '茶', amount: 1500 }] };
  const r = await api<Order>(relayUrl, 'POST', '/v1/orders', token, body, headers);
  if (r.status !== 201) throw new Error(`create on ${relayUrl} failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const isPaid = (no: string) => (m: RelayEvent) => m.type === 'order.updated' && m.order.combine_out_trade_no === no && m.order.state === 'SUCCESS';
const paidCount = (c: EventsClient, no: string) => c.updates(no).filter((o) => o.state === 'SUCCESS').length;

/** The highest cursor this socket has been given (its first snapshot's, or a later update's). */
function lastCursor(c: EventsClient): number {
  let last = -1;
  for (const m of c.messages) {
    if (m.type === 'snapshot') last = Math.max(last, m.cursor);
    if (m.type === 'order.updated' && m.cursor !== undefined) last = Math.max(last, m.cursor);
  }
  if (last < 0) throw new Error('this socket was given no cursor');
  return last;
}

/** Sandbox request log entries whose path starts with `prefix`. */
async function sandboxRequests(prefix: string): Promise<{ at: string; method: string; url: string; status: number }[]> {
  return (await api(sandbox.url, 'GET', `/sandbox/requests?path=${encodeURIComponent(prefix)}`, null)).body.requests;
}

describe('two relays on one PostgreSQL database', () => {
  it('a payment notified to relay A reaches a terminal on relay B; a token made after both started works on both', async () => {
    const p = await startPair();
    const onB = await connect(p.b.url, p.manager);
    const order = await createOrder(p.a.url, p.cashier);
    const r = await post(p.a.url, forge.build(order));
    expect(r.status).toBeLessThan(300);
    const pushed = await onB.next(isPaid(order.combine_out_trade_no));
    expect(pushed.type === 'order.updated' && pushed.order.sub_orders.every((s) => s.state === 'SUCCESS')).toBe(true);
    expect((await api<Order>(p.b.url, 'GET', `/v1/orders/${order.combine_out_trade_no}`, p.cashier)).body.state).toBe('SUCCESS');

    // A token issued now (both relays already running) authenticates on either relay.
    const fresh = await addTerminal(p.config, 'till-2', 'cashier');
    for (const url of [p.a.url, p.b.url]) {
      const me = await api(url, 'GET', '/v1/me', fresh);
      expect(me.status, url).toBe(200);
      expect(me.body).toEqual({ terminal: 'till-2', role: 'cashier' });
    }
    const mine = await createOrder(p.b.url, fresh);
    const seen = await api<Order>(p.a.url, 'GET', `/v1/orders/${mine.combine_out_trade_no}`, fresh);
    expect(seen.status).toBe(200);
    expect(seen.body.terminal).toBe('till-2');
    const onA = await connect(p.a.url, fresh);
    const snap = await onA.next((m) => m.type === 'snapshot');
    expect(snap.type === 'snapshot' && snap.orders.map((o) => o.combine_out_trade_no)).toContain(mine.combine_out_trade_no);
  }, 60_000);

  it('200 duplicates of one payment over both relays at once: every one 2xx, one transition, one push per terminal', async () => {
    const p = await startPair();
    const extra = await addTerminal(p.config, 'till-3', 'cashier');
    const terms = [
      await connect(p.a.url, p.cashier), await connect(p.a.url, p.manager),
      await connect(p.b.url, extra), await connect(p.b.url, p.manager),
    ];
    const order = await createOrder(p.a.url, p.cashier);
    const marker = await createOrder(p.b.url, p.cashier);
    const before = (await api<Order>(p.a.url, 'GET', `/v1/orders/${order.combine_out_trade_no}`, p.cashier)).body;
    // WeChat Pay repeats one notification (same id) and may also send the payment again under
    // new ids: half of each, alternating relays, all in flight together.
    const sameId = randomUUID();
    const notes = Array.from({ length: 200 }, (_, i) => forge.build(order, i % 4 < 2 ? { id: sameId } : {}));
    const answers = await Promise.all(notes.map((n, i) => post(i % 2 ? p.b.url : p.a.url, n)));
    expect(answers.filter((r) => r.status < 200 || r.status >= 300)).toEqual([]);

    // A later, unrelated change: once every terminal has it, every earlier change has been delivered.
    expect((await post(p.b.url, forge.build(marker))).status).toBeLessThan(300);
    for (const t of terms) await t.next(isPaid(marker.combine_out_trade_no));
    for (const [i, t] of terms.entries()) expect(paidCount(t, order.combine_out_trade_no), `terminal ${i}`).toBe(1);
    const after = (await api<Order>(p.b.url, 'GET', `/v1/orders/${order.combine_out_trade_no}`, p.cashier)).body;
    expect(after.state).toBe('SUCCESS');
    // One transition: one version step, one paid time.
    expect(after.version).toBe(before.version! + 1);
    const rows = await p.db.query('SELECT version FROM orders WHERE combine_out_trade_no = $1', [order.combine_out_trade_no]);
    expect(rows.rows[0].version).toBe(after.version);
  }, 60_000);

  it('a terminal of relay A resumes on relay B with ?since=<last cursor>: exactly the changes it missed', async () => {
    const p = await startPair();
    const [o1, o2, o3] = [await createOrder(p.a.url, p.cashier), await createOrder(p.a.url, p.cashier), await createOrder(p.b.url, p.cashier)];
    const onA = await connect(p.a.url, p.cashier);
    await onA.next((m) => m.type === 'snapshot');
    expect((await post(p.a.url, forge.build(o1))).status).toBeLessThan(300);
    await onA.next(isPaid(o1.combine_out_trade_no));
    const since = lastCursor(onA);
    onA.close();

    // While it is away: changes through both relays.
    expect((await post(p.b.url, forge.build(o2))).status).toBeLessThan(300);
    expect((await post(p.a.url, forge.build(o3))).status).toBeLessThan(300);
    const o4 = await createOrder(p.b.url, p.cashier);

    const onB = await connect(p.b.url, p.cashier, since);
    // A change made after the resume (a new order): once it is here, the replay is complete (it is
    // sent first, and B delivers in cursor order).
    const o5 = await createOrder(p.a.url, p.cashier);
    await onB.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === o5.combine_out_trade_no && m.order.creation === 'CREATED');
    expect(onB.messages.filter((m) => m.type === 'snapshot')).toEqual([]);
    const updates = onB.messages.flatMap((m) => (m.type === 'order.updated' ? [[m.order.combine_out_trade_no, m.order.state] as const] : []));
    // o1 was seen before leaving: never repeated. o2, o3 once each as paid, o4 once as created
    // (the latest state of each, once); then o5, live.
    expect(updates.filter(([no]) => no === o1.combine_out_trade_no)).toEqual([]);
    expect(updates.filter(([no]) => no === o2.combine_out_trade_no)).toEqual([[o2.combine_out_trade_no, 'SUCCESS']]);
    expect(updates.filter(([no]) => no === o3.combine_out_trade_no)).toEqual([[o3.combine_out_trade_no, 'SUCCESS']]);
    expect(updates.filter(([no]) => no === o4.combine_out_trade_no)).toEqual([[o4.combine_out_trade_no, 'NOTPAY']]);
    const others = updates.filter(([no]) => ![o1, o2, o3, o4].some((o) => o.combine_out_trade_no === no));
    expect(others.length).toBeGreaterThan(0);
    expect(others.every(([no, state]) => no === o5.combine_out_trade_no && state === 'NOTPAY')).toBe(true);
    // Cursors only grow on the resumed socket, and all are beyond the one it resumed from.
    const cursors = onB.messages.flatMap((m) => (m.type === 'order.updated' && m.cursor !== undefined ? [m.cursor] : []));
    expect(cursors).toHaveLength(updates.length);
    expect(cursors.every((c, i) => c > since && (i === 0 || c > cursors[i - 1]!))).toBe(true);
  }, 60_000);

  it('one Idempotency-Key sent to both relays at the same moment makes one order', async () => {
    const p = await startPair();
    for (let round = 0; round < 5; round++) {
      const key = `race-${round}-${randomUUID()}`;
      const body = { description: '同键', sub_orders: [{ mchid: mchids[0]!, description: '面', amount: 1000 + round }, { mchid: mchids[1]!, description: '茶', amount: 500 }] };
      const answers = await Promise.all([p.a.url, p.b.url].map((url) => api<Order & { code?: string }>(url, 'POST', '/v1/orders', p.cashier, body, { 'Idempotency-Key': key })));
      // Both get the order, or the one that lost the race is told the order is still being created.
      for (const r of answers) expect(r.status === 201 || (r.status === 409 && r.body.code === 'ORDER_PENDING'), JSON.stringify(r)).toBe(true);
      const made = answers.filter((r) => r.status === 201).map((r) => r.body.combine_out_trade_no);
      expect(made.length).toBeGreaterThan(0);
      expect(new Set(made).size).toBe(1);
      const rows = await p.db.query('SELECT combine_out_trade_no FROM orders WHERE terminal = $1 AND idempotency_key = $2', ['till-1', key]);
      expect(rows.rows.map((r) => r.combine_out_trade_no)).toEqual([made[0]]);
      // Retries on either relay afterwards: the same order.
      for (const url of [p.b.url, p.a.url]) {
        const again = await api<Order>(url, 'POST', '/v1/orders', p.cashier, body, { 'Idempotency-Key': key });
        expect(again.status).toBe(201);
        expect(again.body.combine_out_trade_no).toBe(made[0]);
      }
    }
    const total = await p.db.query("SELECT COUNT(*)::int AS n FROM orders WHERE idempotency_key LIKE 'race-%'");
    expect(total.rows[0].n).toBe(5);
  }, 60_000);

  it('with both reconcilers running, each order is queried by one relay at a time and each expired order closed once', async () => {
    const p = await startPair({ RELAY_RECONCILE_TICK_MS: '50', RELAY_QUERY_AFTER_SECONDS: '1', RELAY_CLOSE_MIN_AGE_SECONDS: '0' });
    const QUERY = '/v3/combine-transactions/out-trade-no/';
    // Slow queries (WeChat Pay under load): a relay's check stays in flight for 300 ms, so a second
    // relay claiming the same order meanwhile would show as two queries within a moment.
    expect((await api(sandbox.url, 'POST', '/sandbox/control/faults', null, { kind: 'SLOW', method: 'GET', path: QUERY, delay_ms: 300, count: 40 })).status).toBe(200);
    try {
      const onB = await connect(p.b.url, p.manager);
      const orders: Order[] = [];
      for (let i = 0; i < 6; i++) orders.push(await createOrder(i % 2 ? p.b.url : p.a.url, p.cashier, {}, 3000 + i));
      const nos = orders.map((o) => o.combine_out_trade_no);
      const queriesOf = (log: { at: string; method: string; url: string }[], no: string) => log.filter((e) => e.method === 'GET' && (e.url === QUERY + no || e.url.startsWith(`${QUERY}${no}?`)));
      // First the follow-up queries of unpaid orders (RELAY_QUERY_AFTER_SECONDS), by both reconcilers.
      await until(async () => {
        const log = await sandboxRequests(QUERY);
        return nos.every((no) => queriesOf(log, no).length > 0);
      }, 20_000, 100);
      // Then the clock seam: they look expired from now on. next_check_ms is left alone (it may be a
      // reconciler's lease): they come due by the relays' own schedule and are closed.
      const now = Date.now() - 1;
      await p.db.query('UPDATE orders SET expires_ms = $1, expires_at = $2 WHERE combine_out_trade_no = ANY($3)', [now, new Date(now).toISOString(), nos]);
      for (const no of nos) await onB.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === no && m.order.state === 'CLOSED', 30_000);
      // Whatever is still in flight has nothing left to do: every order is final and unwatched.
      await until(async () => {
        const r = await p.db.query('SELECT COUNT(*)::int AS n FROM orders WHERE combine_out_trade_no = ANY($1) AND watch = 1', [nos]);
        return r.rows[0].n === 0;
      }, 15_000, 50);

      const log = await sandboxRequests(QUERY);
      for (const no of nos) {
        const closes = log.filter((e) => e.method === 'POST' && e.url.startsWith(`${QUERY}${no}/close`));
        expect(closes.map((e) => e.status), `closes of ${no}`).toEqual([204]);
        const queries = queriesOf(log, no).map((e) => Date.parse(e.at)).sort((x, y) => x - y);
        // Before expiry and in the close: at least two, each by one relay at a time. Two relays
        // claiming one order would answer within the 300 ms delay of each other; one relay's own
        // schedule puts at least a second between two queries of one order.
        expect(queries.length, `queries of ${no}`).toBeGreaterThanOrEqual(2);
        for (let i = 1; i < queries.length; i++) expect(queries[i]! - queries[i - 1]!, `queries of ${no}`).toBeGreaterThanOrEqual(500);
      }
      // The automatic close is audited once per order, by `auto`.
      const audit = await p.db.query("SELECT target, detail FROM audit_log WHERE terminal = 'auto' AND action = 'close' AND target = ANY($1)", [nos]);
      expect(audit.rows.map((r) => [r.target, JSON.parse(r.detail).outcome]).sort()).toEqual(nos.map((no) => [no, 'CLOSED']).sort());
      for (const no of nos) expect(onB.updates(no).filter((o) => o.state === 'CLOSED'), no).toHaveLength(1);
    } finally {
      await api(sandbox.url, 'DELETE', '/sandbox/control/faults', null);
    }
  }, 90_000);
});
