import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Order, RelayEvent } from '../../shared/contracts/relay-api';
import { openStore } from '../../shared/relay/index';
import { SEND_LEASE_MS } from '../../shared/relay/leases';
import { newCombineOutTradeNo, subOutTradeNo } from '../../shared/relay/ids';
import { formatBeijing } from '../../shared/wechatpay/time';
import { api, createOrder, EventsClient, orderBody, pay, startEnv, TEST_ENGINE, until, type Env } from './env';

/** The next message matching `pred` that arrives from now on. */
function nextNew(ws: EventsClient, pred: (m: RelayEvent) => boolean, timeoutMs?: number): Promise<RelayEvent> {
  const from = ws.messages.length;
  return ws.next((m) => pred(m) && ws.messages.indexOf(m) >= from, timeoutMs);
}

let env: Env;
beforeAll(async () => {
  env = await startEnv({ queryAfterSeconds: 1, heartbeatSeconds: 1 });
});
afterAll(async () => env?.close());

describe('relay end to end against the sandbox', () => {
  it('create → pay → notification → exactly one WebSocket message', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    await ws.next((m) => m.type === 'snapshot');
    const order = await createOrder(env, [2800, 1500, 300]);
    expect(order).toMatchObject({ state: 'NOTPAY', total_amount: 4600, terminal: 'till-1', creation: 'CREATED', description: '测试订单' });
    expect(order.code_url).toMatch(/^weixin:\/\//);
    expect(order.combine_out_trade_no).toMatch(/^[0-9A-Za-z_-]{6,32}$/);
    expect(order.sub_orders.map((s) => s.amount)).toEqual([2800, 1500, 300]);
    expect(new Set(order.sub_orders.map((s) => s.out_trade_no)).size).toBe(3);
    const paid = await pay(env, order);
    expect(paid.status).toBe(200);
    const msg = await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS');
    if (msg.type !== 'order.updated') throw new Error('unexpected');
    expect(msg.order.paid_at).toBeTruthy();
    expect(msg.order.sub_orders.every((s) => s.state === 'SUCCESS' && s.transaction_id)).toBe(true);
    expect(typeof msg.cursor).toBe('number');
    // Messages arrive in order: once a heartbeat sent after the push is in, a duplicate would be too.
    await nextNew(ws, (m) => m.type === 'heartbeat');
    expect(ws.updates(order.combine_out_trade_no).filter((o) => o.state === 'SUCCESS')).toHaveLength(1);
    const got = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}`, env.cashier);
    expect(got.body.state).toBe('SUCCESS');
    // The sandbox saw exactly one 2xx delivery.
    const log = await api(env.sandboxUrl, 'GET', '/sandbox/notifications', null);
    expect(JSON.stringify(log.body)).toContain(order.combine_out_trade_no);
    ws.close();
  });

  it('a dropped notification still ends in SUCCESS through the query path', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    const order = await createOrder(env);
    expect((await pay(env, order, { notify: false })).status).toBe(200);
    const msg = await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS', 15_000);
    expect(msg.type).toBe('order.updated');
    ws.close();
  });

  it('?sync=1 asks WeChat Pay first', async () => {
    const order = await createOrder(env);
    await pay(env, order, { notify: false });
    const r = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}?sync=1`, env.cashier);
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('SUCCESS');
  });

  it('Idempotency-Key: a retry returns the same order; a different body with the key is refused', async () => {
    const key = 'press-' + Date.now();
    const [a, b] = await Promise.all([
      api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env), { 'Idempotency-Key': key }),
      api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env), { 'Idempotency-Key': key }),
    ]);
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body.combine_out_trade_no).toBe(a.body.combine_out_trade_no);
    const c = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env), { 'Idempotency-Key': key });
    expect(c.body.combine_out_trade_no).toBe(a.body.combine_out_trade_no);
    expect(c.body.code_url).toBe(a.body.code_url);
    const d = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env, [1, 2]), { 'Idempotency-Key': key });
    expect(d.status).toBe(409);
    expect(d.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('bad input answers 400 naming the field; tokens and roles are enforced', async () => {
    const body = orderBody(env);
    body.sub_orders[1]!.amount = -5;
    const r = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, body);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ field: 'sub_orders[1].amount' });
    expect(r.body.message).toContain('sub_orders[1].amount');
    const eleven = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env, Array(11).fill(100)));
    expect(eleven.body.field).toBe('sub_orders');
    expect((await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, '{not json')).body.field).toBe('body');
    expect((await api(env.relayUrl, 'POST', '/v1/orders', null, orderBody(env))).status).toBe(401);
    expect((await api(env.relayUrl, 'POST', '/v1/orders', 'x'.repeat(43), orderBody(env))).status).toBe(401);
    expect((await api(env.relayUrl, 'POST', '/v1/bills/trade', env.cashier, { bill_date: '2026-01-01' })).status).toBe(403);
    expect((await api(env.relayUrl, 'GET', '/v1/orders/CNOSUCHORDER', env.cashier)).status).toBe(404);
    expect((await api(env.relayUrl, 'GET', '/v1/me', env.manager)).body).toEqual({ terminal: 'boss', role: 'manager' });
    // Contract: 200 {"ok": true}; extended with the database's health.
    expect((await api(env.relayUrl, 'GET', '/healthz', null)).body).toMatchObject({ ok: true, database: { ok: true, engine: TEST_ENGINE } });
    const merchants = await api(env.relayUrl, 'GET', '/v1/merchants', env.cashier);
    expect(merchants.body.sub_merchants.map((m: any) => m.mchid)).toEqual(env.merchant.sub_merchants.map((m) => m.mchid));
  });

  it('an upstream failure leaves the order failed with WeChat code and answers 502', async () => {
    await api(env.sandboxUrl, 'POST', '/sandbox/control/faults', null, { path: '/v3/combine-transactions/native', kind: 'SYSTEM_ERROR', count: 20 });
    try {
      const r = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env));
      expect(r.status).toBe(502);
      expect(r.body.code).toBe('UPSTREAM_SYSTEM_ERROR');
      expect(r.body.upstream_code).toBe('SYSTEM_ERROR');
      const no = r.body.order.combine_out_trade_no;
      const stored = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier);
      expect(stored.body).toMatchObject({ creation: 'FAILED', error_code: 'SYSTEM_ERROR' });
    } finally {
      await api(env.sandboxUrl, 'DELETE', '/sandbox/control/faults', null);
    }
  });

  it('lists with filters and reports takings', async () => {
    const order = await createOrder(env, [111, 222]);
    const no = order.combine_out_trade_no;
    const search = async (q: string) => (await api(env.relayUrl, 'GET', `/v1/orders?q=${encodeURIComponent(q)}`, env.cashier)).body.orders.map((o: Order) => o.combine_out_trade_no);
    // Number search: the beginning or all of an order or sub-order number (index ranges, not a scan).
    expect(await search(no.slice(0, 12))).toContain(no);
    expect(await search(no)).toEqual([no]);
    expect(await search(order.sub_orders[1]!.out_trade_no)).toEqual([no]);
    expect(await search(order.sub_orders[1]!.out_trade_no.slice(0, 14))).toContain(no);
    expect(await search(no.slice(3, 14))).not.toContain(no);
    expect(await search('%')).toEqual([]);
    const open = await api(env.relayUrl, 'GET', '/v1/orders?state=NOTPAY&older_than_minutes=0&open=1', env.cashier);
    expect(open.body.orders.every((o: Order) => o.state === 'NOTPAY')).toBe(true);
    expect((await api(env.relayUrl, 'GET', '/v1/orders?state=BOGUS', env.cashier)).body.field).toBe('state');
    const before = await api(env.relayUrl, 'GET', '/v1/takings', env.cashier);
    await pay(env, order);
    const paid = await until(async () => {
      const o = (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body;
      return o.state === 'SUCCESS' ? o : null;
    });
    // …and a transaction number, exact or its beginning.
    const txn = paid.sub_orders[0]!.transaction_id!;
    expect(await search(txn)).toEqual([no]);
    expect(await search(txn.slice(0, -3))).toContain(no);
    const after = await api(env.relayUrl, 'GET', `/v1/takings?date=${before.body.date}`, env.cashier);
    const m0 = (t: any) => t.merchants.find((m: any) => m.mchid === order.sub_orders[0]!.mchid);
    expect(m0(after.body).amount - m0(before.body).amount).toBe(111);
    expect(m0(after.body).count - m0(before.body).count).toBe(1);
  });

  it('WebSocket: 401 at the upgrade, resume by cursor, heartbeats, dead sockets dropped', async () => {
    await expect(EventsClient.connect(env, 'bad-token-bad-token-bad')).rejects.toThrow(/401/);
    const first = await EventsClient.connect(env, env.cashier);
    const snap = await first.next((m) => m.type === 'snapshot');
    if (snap.type !== 'snapshot') throw new Error('no snapshot');
    expect(Array.isArray(snap.orders)).toBe(true);
    first.close();
    // Changes while away…
    const order = await createOrder(env);
    await pay(env, order);
    await until(async () => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}`, env.cashier)).body.state === 'SUCCESS');
    // …arrive on resume, without a snapshot.
    const back = await EventsClient.connect(env, env.cashier, snap.cursor);
    const missed = await back.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no);
    expect(missed.type === 'order.updated' && missed.order.state).toBe('SUCCESS');
    expect(back.messages.some((m) => m.type === 'snapshot')).toBe(false);
    await back.next((m) => m.type === 'heartbeat', 3000);
    back.close();
    // A socket that never answers pings is dropped (terminated: no close frame, code 1006)
    // after a ping went unanswered; one that answers stays.
    const live = await EventsClient.connect(env, env.manager);
    const deaf = new WebSocket(env.relayUrl.replace('http', 'ws') + '/v1/events', { headers: { Authorization: `Bearer ${env.cashier}` }, autoPong: false });
    let pings = 0;
    deaf.on('ping', () => { pings++; });
    const code = await new Promise<number>((r) => deaf.on('close', (c) => r(c)));
    expect(code).toBe(1006);
    expect(pings).toBeGreaterThanOrEqual(1);
    await nextNew(live, (m) => m.type === 'heartbeat', 3000);
    expect(live.ws.readyState).toBe(WebSocket.OPEN);
    live.close();
  });

  // SQLite (one relay): a PENDING create is the dead process's, re-sent at start whatever its
  // schedule. PostgreSQL (several relays): it is another relay's until SEND_LEASE_MS after its
  // creation, then taken over when due — so here it is old enough and due.
  it('on start, an order recorded but never sent (crash mid-create) is sent and followed', async () => {
    await env.stopRelay();
    const store = await openStore(env.config);
    const now = Date.now();
    const born = TEST_ENGINE === 'postgresql' ? now - SEND_LEASE_MS - 1000 : now;
    const no = newCombineOutTradeNo(born);
    const subs = [0, 1].map((idx) => ({ out_trade_no: subOutTradeNo(no, idx), combine_out_trade_no: no, idx, mchid: env.merchant.sub_merchants[idx]!.mchid, description: '面', amount: 700 + idx, attach: null }));
    const request = {
      combine_appid: env.merchant.appid, combine_mchid: env.merchant.mchid, combine_out_trade_no: no,
      sub_orders: subs.map((s) => ({ mchid: s.mchid, attach: no, amount: { total_amount: s.amount, currency: 'CNY' }, out_trade_no: s.out_trade_no, description: s.description })),
      time_expire: formatBeijing(now + 600_000), notify_url: env.config.publicUrl + '/wechatpay/notify',
    };
    await store.orders.insert({
      row: { combine_out_trade_no: no, state: 'NOTPAY', total_amount: 1401, description: null, created_at: new Date(born).toISOString(), created_ms: born,
        expires_at: new Date(now + 600_000).toISOString(), expires_ms: now + 600_000, updated_ms: born, terminal: 'till-1', creation: 'PENDING',
        idempotency_key: null, request_hash: 'h', request_json: JSON.stringify(request), watch: 1, next_check_ms: TEST_ENGINE === 'postgresql' ? now : now + 3_600_000 },
      subs,
    });
    await store.close();
    await env.restartRelay();
    const created = await until(async () => {
      const o = (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body;
      return o.creation === 'CREATED' ? o : null;
    });
    expect(created.code_url).toMatch(/^weixin:/);
    await pay(env, created);
    await until(async () => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body.state === 'SUCCESS');
  });
});

describe('order create timing out upstream', () => {
  let slow: Env;
  beforeAll(async () => {
    slow = await startEnv({ queryAfterSeconds: 1, client: { timeoutMs: 400, maxRetries: 0 } });
  });
  afterAll(async () => slow?.close());

  it('records the order, marks it failed (TIMEOUT, still followed) and resolves it later by query', async () => {
    // WeChat (the sandbox) creates the order but answers after the client gave up.
    await api(slow.sandboxUrl, 'POST', '/sandbox/control/faults', null, { path: '/v3/combine-transactions/native', kind: 'SLOW', delay_ms: 1500, count: 1 });
    const r = await api(slow.relayUrl, 'POST', '/v1/orders', slow.cashier, orderBody(slow));
    expect(r.status).toBe(502);
    expect(r.body.upstream_code).toBe('TIMEOUT');
    const no: string = r.body.order.combine_out_trade_no;
    const stored = await api<Order>(slow.relayUrl, 'GET', `/v1/orders/${no}`, slow.cashier);
    expect(stored.body).toMatchObject({ creation: 'FAILED', error_code: 'TIMEOUT', state: 'NOTPAY' });
    // The order does exist upstream; the buyer pays it with the notification lost.
    const upstream = await until(async () => {
      const list = await api(slow.sandboxUrl, 'GET', '/sandbox/orders', null);
      return list.body.orders.find((o: { combine_out_trade_no: string }) => o.combine_out_trade_no === no);
    });
    const paid = await api(slow.sandboxUrl, 'POST', '/sandbox/pay', null, { code_url: upstream.code_url, notify: false });
    expect(paid.status).toBe(200);
    // The reconciler's query finds it paid.
    const done = await until(async () => {
      const o = await api<Order>(slow.relayUrl, 'GET', `/v1/orders/${no}`, slow.cashier);
      return o.body.state === 'SUCCESS' ? o.body : null;
    }, 20_000);
    expect(done.sub_orders.every((s) => s.transaction_id)).toBe(true);
  });
});

