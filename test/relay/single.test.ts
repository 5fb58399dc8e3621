/**
 * Single-merchant sales (contract §2 `"kind": "single"`) against the real sandbox: a
 * one-sub-order sale is created with basic Native signed by that merchant's own keys, and
 * everything the combined path does works for it — exactly-once notification with the
 * anti-fake checks and alerts, 200 concurrent duplicates, the query after a lost notification,
 * the 5-minute close rule, automatic close of an expired order, idempotency, upstream failures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order } from '../../shared/contracts/relay-api';
import { api, EventsClient, orderBody, pay, startEnv, until, type Env } from './env';
import { NotificationForge, post } from './forge';
import { BasicNotificationForge } from './single-forge';

/** A one-merchant sale of `amount` fen from sub-merchant `i`. */
const singleBody = (env: Env, amount = 1800, i = 0) => ({
  sub_orders: [{ mchid: env.merchant.sub_merchants[i]!.mchid, description: '牛肉面', amount }],
  description: '单商户',
});

async function createSingle(env: Env, amount?: number, i?: number): Promise<Order> {
  const r = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, singleBody(env, amount, i));
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const getOrder = async (env: Env, no: string) => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body;

/** Pushes are in order: once a later order's push is in, every earlier push is too. */
async function barrier(env: Env, ws: EventsClient): Promise<void> {
  const later = await createSingle(env, 1);
  await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === later.combine_out_trade_no);
}

async function alertsOf(env: Env, no: string): Promise<string[]> {
  const r = await api<{ alerts: { kind: string; combine_out_trade_no: string | null }[] }>(env.relayUrl, 'GET', '/v1/alerts', env.manager);
  return r.body.alerts.filter((a) => a.combine_out_trade_no === no).map((a) => a.kind).sort();
}

/** The sandbox's requests under `path`, as `METHOD url by mchid`. */
async function sandboxRequests(env: Env, path: string) {
  const r = await api<{ requests: { method: string; url: string; mchid: string; authenticated: boolean; status: number }[] }>(env.sandboxUrl, 'GET', `/sandbox/requests?path=${encodeURIComponent(path)}`, null);
  return r.body.requests;
}

async function sandboxOrder(env: Env, outTradeNo: string) {
  const r = await api<{ orders: { kind: string; combine_out_trade_no: string; state: string; sub_orders: { trade_state: string }[] }[] }>(env.sandboxUrl, 'GET', '/sandbox/orders', null);
  return r.body.orders.find((o) => o.combine_out_trade_no === outTradeNo);
}


/** The clock seam of close.test.ts: moving the stored creation time back ages the order. */
const age = (env: Env, no: string, ms: number) => env.sql('UPDATE orders SET created_ms = created_ms - ? WHERE combine_out_trade_no = ?', ms, no);

describe('single-merchant sales (every participant with its own keys)', () => {
  let env: Env;
  let basic: BasicNotificationForge;
  beforeAll(async () => {
    // The relay's own 5-minute rule is under test (through the clock seam); the sandbox's is off.
    env = await startEnv({ queryAfterSeconds: 1, closeMinAgeSeconds: 300, sandboxCloseMinAgeSeconds: 0 });
    basic = new BasicNotificationForge(env.init.sandboxDir);
  });
  afterAll(async () => env?.close());

  it('create → pay → notification: basic Native signed by the merchant itself, kind single, exactly one push, takings', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    await ws.next((m) => m.type === 'snapshot');
    const before = (await api(env.relayUrl, 'GET', '/v1/takings', env.cashier)).body;
    const mchid = env.merchant.sub_merchants[1]!.mchid;
    const order = await createSingle(env, 2350, 1);
    expect(order).toMatchObject({ kind: 'single', state: 'NOTPAY', creation: 'CREATED', total_amount: 2350, terminal: 'till-1', description: '单商户' });
    expect(order.code_url).toMatch(/^weixin:\/\//);
    expect(order.sub_orders).toHaveLength(1);
    expect(order.sub_orders[0]).toMatchObject({ mchid, amount: 2350, description: '牛肉面', state: 'NOTPAY', transaction_id: null });
    expect(order.sub_orders[0]!.out_trade_no).not.toBe(order.combine_out_trade_no);
    // WeChat Pay saw a basic Native create signed by that merchant, not by the initiator.
    const creates = await sandboxRequests(env, '/v3/pay/transactions/native');
    expect(creates.filter((r) => r.status === 200).map((r) => [r.method, r.mchid, r.authenticated])).toContainEqual(['POST', mchid, true]);
    expect((await sandboxRequests(env, '/v3/combine-transactions/native')).length).toBe(0);
    const atSandbox = await sandboxOrder(env, order.sub_orders[0]!.out_trade_no);
    expect(atSandbox).toMatchObject({ kind: 'basic', state: 'NOTPAY' });

    const paid = await pay(env, order);
    expect(paid.status).toBe(200);
    expect(paid.body.kind).toBe('basic');
    const msg = await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS');
    if (msg.type !== 'order.updated') throw new Error('unexpected');
    expect(msg.order.kind).toBe('single');
    expect(msg.order.paid_at).toBeTruthy();
    expect(msg.order.sub_orders[0]!.transaction_id).toBe(paid.body.sub_orders[0].transaction_id);
    await barrier(env, ws);
    expect(ws.updates(order.combine_out_trade_no).filter((o) => o.state === 'SUCCESS')).toHaveLength(1);
    // Delivered once with a 2xx, signed as that merchant.
    const log = await api<{ deliveries: { order: string; ok: boolean; kind: string }[] }>(env.sandboxUrl, 'GET', '/sandbox/notifications', null);
    expect(log.body.deliveries.filter((d) => d.order === order.sub_orders[0]!.out_trade_no && d.kind === 'delivery' && d.ok)).toHaveLength(1);
    // Same order object shape for both kinds; kind on every order in lists.
    const listed = await api<{ orders: Order[] }>(env.relayUrl, 'GET', `/v1/orders?q=${order.combine_out_trade_no}`, env.cashier);
    expect(listed.body.orders.map((o) => o.kind)).toEqual(['single']);
    const combined = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env));
    expect(combined.body.kind).toBe('combine');
    expect(Object.keys(combined.body).sort()).toEqual(Object.keys((await getOrder(env, order.combine_out_trade_no))).sort());
    // Takings count the single sale for its merchant.
    const after = (await api(env.relayUrl, 'GET', `/v1/takings?date=${before.date}`, env.cashier)).body;
    const of = (t: any) => t.merchants.find((m: any) => m.mchid === mchid);
    expect(of(after).amount - of(before).amount).toBe(2350);
    expect(of(after).count - of(before).count).toBe(1);
    ws.close();
  });

  it('a lost notification (notify: false) is recovered by the query after silence', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    const order = await createSingle(env, 990);
    expect((await pay(env, order, { notify: false })).status).toBe(200);
    const msg = await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS', 15_000);
    if (msg.type !== 'order.updated') throw new Error('unexpected');
    expect(msg.order.sub_orders[0]!.transaction_id).toBeTruthy();
    // It was a query by the merchant itself (basic query by out_trade_no).
    const queries = await sandboxRequests(env, `/v3/pay/transactions/out-trade-no/${order.sub_orders[0]!.out_trade_no}`);
    expect(queries.some((q) => q.method === 'GET' && q.mchid === order.sub_orders[0]!.mchid && q.status === 200)).toBe(true);
    // ?sync=1 works for a single sale too.
    const o2 = await createSingle(env, 991);
    await pay(env, o2, { notify: false });
    expect((await api<Order>(env.relayUrl, 'GET', `/v1/orders/${o2.combine_out_trade_no}?sync=1`, env.cashier)).body.state).toBe('SUCCESS');
    ws.close();
  });

  it('200 concurrent deliveries of one notification: one transition, one push', async () => {
    const order = await createSingle(env, 1234);
    const ws = await EventsClient.connect(env, env.cashier);
    await ws.next((m) => m.type === 'snapshot');
    const n = basic.build(order, { id: 'EV-single-dup-' + order.combine_out_trade_no });
    const replies = await Promise.all(Array.from({ length: 200 }, () => post(env.relayUrl, n)));
    expect(replies.map((r) => r.status).filter((s) => s !== 204)).toEqual([]);
    await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS');
    await barrier(env, ws);
    expect(ws.updates(order.combine_out_trade_no).filter((o) => o.state === 'SUCCESS')).toHaveLength(1);
    const [recorded] = await env.sql<{ n: number }>('SELECT COUNT(*) AS n FROM notifications WHERE id = ?', JSON.parse(n.body).id);
    expect(recorded.n).toBe(1);
    // A later delivery with a new id changes nothing (final).
    expect((await post(env.relayUrl, basic.build(order))).status).toBe(204);
    await barrier(env, ws);
    expect(ws.updates(order.combine_out_trade_no).filter((o) => o.state === 'SUCCESS')).toHaveLength(1);
    ws.close();
  });

  it('forged notifications change nothing: wrong key, wrong amount, wrong merchant, wrong appid (alerts pushed)', async () => {
    const mws = await EventsClient.connect(env, env.manager);
    const order = await createSingle(env, 1500, 0);
    const no = order.combine_out_trade_no;
    const [a, b] = env.merchant.sub_merchants;
    // Signed with a stranger's key under the merchant's serial: verification fails.
    const wrongKey = await post(env.relayUrl, basic.build(order, { key: NotificationForge.strangerKey() }));
    expect(wrongKey.status).toBe(401);
    // Genuinely signed by the merchant, but for another amount than we created.
    const wrongAmount = await post(env.relayUrl, basic.build(order, { amount: 1 }));
    expect(wrongAmount.status).toBe(400);
    const pushed = await mws.next((m) => m.type === 'alert' && m.alert.combine_out_trade_no === no);
    expect(pushed.type === 'alert' && pushed.alert.kind).toBe('AMOUNT_MISMATCH');
    // Genuinely signed by ANOTHER merchant about itself, naming our order's number.
    const otherMerchant = await post(env.relayUrl, basic.build(order, { signer: b!.mchid, mchid: b!.mchid }));
    expect(otherMerchant.status).toBe(400);
    // Signed by the order's merchant but claiming another merchant: refused before any order is looked at.
    const claimsOther = await post(env.relayUrl, basic.build(order, { signer: a!.mchid, mchid: b!.mchid }));
    expect(claimsOther.status).toBe(400);
    expect(claimsOther.body.message).toContain('MERCHANT_MISMATCH');
    // Not our appid.
    const id = 'single-appid-' + no;
    const wrongAppid = await post(env.relayUrl, basic.build(order, { id, appid: 'wx0000000000000bad' }));
    expect(wrongAppid.status).toBe(400);
    expect(wrongAppid.body.message).toContain('APPID_MISMATCH');
    // An order number we never created.
    const unknown = await post(env.relayUrl, basic.build(order, { outTradeNo: 'S0000000000000000001' }));
    expect(unknown.status).toBe(404);
    expect((await getOrder(env, no)).state).toBe('NOTPAY');
    expect(await alertsOf(env, no)).toEqual(['AMOUNT_MISMATCH', 'APPID_MISMATCH', 'MCHID_MISMATCH']);
    // A combine notification can never pay a single sale (nor its initiator sign for it).
    const combineForge = new NotificationForge(env.dir);
    expect((await post(env.relayUrl, combineForge.build(order))).status).toBe(400);
    expect((await getOrder(env, no)).state).toBe('NOTPAY');
    // The refused id was not recorded: the genuine delivery with it still applies.
    expect((await post(env.relayUrl, basic.build(order, { id }))).status).toBe(204);
    expect((await getOrder(env, no)).state).toBe('SUCCESS');
    mws.close();
  });

  it('a basic notification cannot pay a sub-order of a combined sale', async () => {
    const combined = (await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env, [700, 800]))).body;
    const asSingle = { ...combined, sub_orders: [combined.sub_orders[0]!] };
    const r = await post(env.relayUrl, basic.build(asSingle));
    expect(r.status).toBe(400);
    expect((await getOrder(env, combined.combine_out_trade_no)).state).toBe('NOTPAY');
    expect(await alertsOf(env, combined.combine_out_trade_no)).toEqual(['SUB_ORDERS_MISMATCH']);
  });

  it('Idempotency-Key: the same single sale for a retry; an upstream failure is 502 with WeChat code', async () => {
    const key = 'single-' + Date.now();
    const [x, y] = await Promise.all([0, 1].map(() => api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, singleBody(env, 600), { 'Idempotency-Key': key })));
    expect([x!.status, y!.status]).toEqual([201, 201]);
    expect(y!.body.combine_out_trade_no).toBe(x!.body.combine_out_trade_no);
    expect(x!.body.kind).toBe('single');
    const again = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, singleBody(env, 600), { 'Idempotency-Key': key });
    expect(again.body.code_url).toBe(x!.body.code_url);
    expect((await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, singleBody(env, 601), { 'Idempotency-Key': key })).body.code).toBe('IDEMPOTENCY_KEY_REUSED');

    await api(env.sandboxUrl, 'POST', '/sandbox/control/faults', null, { path: '/v3/pay/transactions/native', kind: 'SYSTEM_ERROR', count: 20 });
    try {
      const r = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, singleBody(env, 602));
      expect(r.status).toBe(502);
      expect(r.body).toMatchObject({ code: 'UPSTREAM_SYSTEM_ERROR', upstream_code: 'SYSTEM_ERROR' });
      // Recorded before WeChat Pay was called: the order exists, failed, with WeChat's code.
      expect(await getOrder(env, r.body.order.combine_out_trade_no)).toMatchObject({ kind: 'single', creation: 'FAILED', error_code: 'SYSTEM_ERROR' });
    } finally {
      await api(env.sandboxUrl, 'DELETE', '/sandbox/control/faults', null);
    }
  });

  it('more than ten merchants: 400 naming sub_orders and saying to split the sale', async () => {
    const r = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env, Array(11).fill(100)));
    expect(r.status).toBe(400);
    expect(r.body.field).toBe('sub_orders');
    expect(r.body.message).toMatch(/split the sale/);
    expect((await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, { sub_orders: [] })).body.field).toBe('sub_orders');
  });

  it('manager close: refused within 5 minutes, then closed at WeChat Pay too; a paid one answers ORDER_PAID', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    const order = await createSingle(env, 880);
    const no = order.combine_out_trade_no;
    const close = () => api(env.relayUrl, 'POST', `/v1/orders/${no}/close`, env.manager);
    const early = await close();
    expect(early.status).toBe(409);
    expect(early.body.code).toBe('CLOSE_TOO_EARLY');
    expect(early.body.retry_after_seconds).toBeGreaterThan(290);
    expect(early.body.retry_after_seconds).toBeLessThanOrEqual(300);
    await age(env, no, 240_000);
    expect((await close()).body.code).toBe('CLOSE_TOO_EARLY');
    await age(env, no, 61_000);
    const done = await close();
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ kind: 'single', state: 'CLOSED' });
    await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === no && m.order.state === 'CLOSED');
    expect(await sandboxOrder(env, order.sub_orders[0]!.out_trade_no)).toMatchObject({ state: 'CLOSED' });
    expect((await pay(env, order)).status).not.toBe(200);
    const closes = await sandboxRequests(env, `/v3/pay/transactions/out-trade-no/${order.sub_orders[0]!.out_trade_no}/close`);
    expect(closes.map((c) => [c.mchid, c.status])).toEqual([[order.sub_orders[0]!.mchid, 204]]);
    expect((await close()).body.state).toBe('CLOSED');

    const paid = await createSingle(env, 881);
    // Paid without a notification, then the manager closes: the query comes first.
    await env.sql('UPDATE orders SET next_check_ms = ? WHERE combine_out_trade_no = ?', Date.now() + 3_600_000, paid.combine_out_trade_no);
    await pay(env, paid, { notify: false });
    await age(env, paid.combine_out_trade_no, 301_000);
    const r = await api(env.relayUrl, 'POST', `/v1/orders/${paid.combine_out_trade_no}/close`, env.manager);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('ORDER_PAID');
    expect((await getOrder(env, paid.combine_out_trade_no)).state).toBe('SUCCESS');
    ws.close();
  });

  it('closes an expired single sale automatically (basic close by its merchant) and audits it as auto', async () => {
    const order = await createSingle(env, 770);
    const no = order.combine_out_trade_no;
    await env.sql('UPDATE orders SET expires_ms = ?, created_ms = created_ms - 301000, next_check_ms = 0 WHERE combine_out_trade_no = ?', Date.now() - 1, no);
    const closed = await until(async () => {
      const o = await getOrder(env, no);
      return o.state === 'CLOSED' ? o : null;
    }, 10_000);
    expect(closed.closed_at).toBeTruthy();
    expect(await sandboxOrder(env, order.sub_orders[0]!.out_trade_no)).toMatchObject({ state: 'CLOSED' });
    const audit = await env.sql<{ terminal: string; detail: string }>("SELECT terminal, detail FROM audit_log WHERE action = 'close' AND target = ? ORDER BY id", no);
    expect(audit.map((a) => [a.terminal, JSON.parse(a.detail).outcome])).toEqual([['auto', 'CLOSED']]);
  });
});

describe('single-merchant sales, mixed setup: certificate mode and a merchant without keys', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, init: { modes: { initiator: 'public_key', participants: ['certificates', 'none', 'public_key', 'public_key'] } } });
  });
  afterAll(async () => env?.close());

  it('a merchant without keys: 409 MERCHANT_KEYS_MISSING naming it, nothing recorded; it still sells in combined sales', async () => {
    const none = env.merchant.sub_merchants[1]!.mchid;
    const r = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, singleBody(env, 500, 1));
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'MERCHANT_KEYS_MISSING', mchid: none });
    expect(r.body.message).toContain(none);
    const [rows] = await env.sql<{ n: number }>('SELECT COUNT(*) AS n FROM sub_orders WHERE mchid = ?', none);
    expect(rows.n).toBe(0);
    const combined = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env, [300, 400]));
    expect(combined.status).toBe(201);
    expect(combined.body.sub_orders.map((s) => s.mchid)).toContain(none);
  });

  it('a certificate-mode merchant sells alone: created as itself, its notification verified with its platform certificate', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    const order = await createSingle(env, 420, 0);
    expect(order.kind).toBe('single');
    expect((await pay(env, order)).status).toBe(200);
    await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS');
    ws.close();
  });
});
