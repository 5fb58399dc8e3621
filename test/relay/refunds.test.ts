/**
 * Refunds per sub-order against the real sandbox: signed by the sub-order's own merchant,
 * recorded before WeChat Pay is called with the remaining amount checked in the same
 * transaction, REFUND.* notifications applied once, lost answers recovered by query.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order, Refund } from '../../shared/contracts/relay-api';
import { apiV3Key, encryptResource } from '../../shared/wechatpay/aead';
import { signBody } from '../../shared/wechatpay/sign';
import { api, createOrder, EventsClient, pay, startEnv, until, type Env } from './env';
import { NotificationForge, post } from './forge';
import { armRefundOutcome, sandboxFaults, sandboxRequests } from '../e2e/sandbox-client';

async function paidOrder(env: Env, amounts: number[]): Promise<Order> {
  const o = await createOrder(env, amounts);
  const p = await pay(env, o);
  expect(p.status).toBe(200);
  return until(async () => {
    const r = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${o.combine_out_trade_no}`, env.cashier);
    return r.body.state === 'SUCCESS' && r.body;
  });
}

const refund = (env: Env, no: string, body: unknown, headers: Record<string, string> = {}, token = env.manager) =>
  api<Refund & { code?: string; retry_after_seconds?: number; remaining_amount?: number }>(env.relayUrl, 'POST', `/v1/orders/${no}/refunds`, token, body, headers);

const getOrder = async (env: Env, no: string) => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body;

async function refundStatus(env: Env, no: string, outRefundNo: string, status: string, timeoutMs = 15_000): Promise<Order> {
  return until(async () => {
    const o = await getOrder(env, no);
    return o.refunds?.find((r) => r.out_refund_no === outRefundNo)?.status === status && o;
  }, timeoutMs);
}

async function sandboxRefunds(env: Env): Promise<{ out_refund_no: string; out_trade_no: string; mchid: string; status: string; amount: { refund: number } }[]> {
  const r = await api(env.sandboxUrl, 'GET', '/sandbox/refunds', null);
  return r.body.refunds;
}

/** REFUND.* notifications as WeChat Pay signs them for one participant (its own WeChat Pay key and APIv3 key). */
class RefundForge {
  readonly key: KeyObject;
  readonly serial: string;
  readonly v3: KeyObject;
  constructor(env: Env, readonly mchid: string) {
    const mine = JSON.parse(readFileSync(join(env.init.merchantDir, 'merchants', mchid, 'merchant.json'), 'utf8'));
    this.key = createPrivateKey(readFileSync(join(env.init.sandboxDir, 'merchants', mchid, 'wechatpay_private_key.pem')));
    this.serial = mine.wechatpay_public_key_id;
    this.v3 = apiV3Key(mine.apiv3_key);
  }
  build(r: Refund, total: number, o: { id?: string; status?: string; amount?: number; mchid?: string; key?: KeyObject } = {}) {
    const status = o.status ?? 'SUCCESS';
    const resource = {
      mchid: o.mchid ?? r.mchid, out_trade_no: r.out_trade_no, transaction_id: '4200000000000000000000000001', out_refund_no: r.out_refund_no,
      refund_id: r.refund_id ?? '50000000000000000000000000001', refund_status: status, success_time: new Date().toISOString().replace(/\.\d+Z$/, '+00:00'),
      user_received_account: '支付用户零钱', amount: { total, refund: o.amount ?? r.amount, payer_total: total, payer_refund: o.amount ?? r.amount },
    };
    const body = JSON.stringify({
      id: o.id ?? randomUUID(), create_time: '2026-01-01T00:00:00+08:00', resource_type: 'encrypt-resource', event_type: `REFUND.${status}`, summary: '退款',
      resource: { original_type: 'refund', ...encryptResource(JSON.stringify(resource), this.v3, 'refund') },
    });
    return { headers: { 'Content-Type': 'application/json', ...signBody(o.key ?? this.key, this.serial, body) }, body };
  }
}

describe('refunds (notifications only: the relay never needs to query)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, refundDelayMs: 300, refundMinIntervalSeconds: 0 });
  }, 60_000);
  afterAll(async () => env?.close());

  it('a partial and a full refund of two sub-orders reach SUCCESS by notification, signed by each sub-order\'s own merchant, pushed live', async () => {
    const order = await paidOrder(env, [3000, 1500, 800]);
    const events = await EventsClient.connect(env, env.manager);
    const [a, b] = order.sub_orders;
    const r1 = await refund(env, order.combine_out_trade_no, { out_trade_no: a!.out_trade_no, amount: 1200, reason: '少一碗面' });
    expect(r1.status, JSON.stringify(r1.body)).toBe(201);
    expect(r1.body).toMatchObject({ order: order.combine_out_trade_no, out_trade_no: a!.out_trade_no, mchid: a!.mchid, amount: 1200, reason: '少一碗面', terminal: 'boss' });
    expect(r1.body.out_refund_no).toMatch(/^[0-9A-Za-z_-]{1,64}$/);
    expect(['PROCESSING', 'SUCCESS']).toContain(r1.body.status);
    const r2 = await refund(env, order.combine_out_trade_no, { out_trade_no: b!.out_trade_no, amount: 1500 });
    expect(r2.status).toBe(201);
    await refundStatus(env, order.combine_out_trade_no, r1.body.out_refund_no, 'SUCCESS');
    const after = await refundStatus(env, order.combine_out_trade_no, r2.body.out_refund_no, 'SUCCESS');
    expect(after.sub_orders.map((s) => s.refunded_amount)).toEqual([1200, 1500, 0]);
    expect(after.sub_orders.map((s) => s.refundable_amount)).toEqual([1800, 0, 800]);
    expect(after.state).toBe('SUCCESS');
    // Live: order.updated pushes carried both refunds to SUCCESS.
    await events.next((m) => m.type === 'order.updated' && m.order.refunds?.filter((r) => r.status === 'SUCCESS').length === 2);
    events.close();
    // Each refund was signed by its sub-order's merchant, never by the initiator.
    const log = await sandboxRequests(env.sandboxUrl, { path: '/v3/refund' });
    const creates = log.filter((q) => q.method === 'POST');
    expect(creates.length).toBeGreaterThanOrEqual(2);
    expect(creates.every((q) => q.authenticated && q.mchid !== env.merchant.mchid)).toBe(true);
    expect(new Set(creates.map((q) => q.mchid))).toEqual(new Set([a!.mchid, b!.mchid]));
    // No query was needed: queryAfterSeconds is an hour.
    expect(log.filter((q) => q.method === 'GET')).toHaveLength(0);
    // Listed for the day; the second full refund leaves nothing.
    const list = await api<{ refunds: Refund[] }>(env.relayUrl, 'GET', '/v1/refunds?status=SUCCESS', env.manager);
    expect(list.body.refunds.map((r) => r.out_refund_no)).toEqual(expect.arrayContaining([r1.body.out_refund_no, r2.body.out_refund_no]));
    const again = await refund(env, order.combine_out_trade_no, { out_trade_no: b!.out_trade_no, amount: 1 });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'REFUND_EXCEEDS_PAID', remaining_amount: 0 });
    // A cashier cannot refund.
    expect((await refund(env, order.combine_out_trade_no, { out_trade_no: a!.out_trade_no, amount: 1 }, {}, env.cashier)).status).toBe(403);
    // Takings net of refunds.
    const takings = (await api(env.relayUrl, 'GET', '/v1/takings', env.cashier)).body;
    const ofA = takings.merchants.find((m: { mchid: string }) => m.mchid === a!.mchid);
    const ofB = takings.merchants.find((m: { mchid: string }) => m.mchid === b!.mchid);
    expect(ofA).toMatchObject({ gross_amount: 3000, refund_amount: 1200, amount: 1800 });
    expect(ofB).toMatchObject({ gross_amount: 1500, refund_amount: 1500, amount: 0 });
    expect(takings.amount).toBe(takings.gross_amount - takings.refund_amount);
  }, 60_000);

  it('a single-merchant sale is refunded the same way, signed by its merchant', async () => {
    const order = await paidOrder(env, [1234]);
    expect(order.kind).toBe('single');
    const r = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[0]!.out_trade_no, amount: 1234, reason: '售罄' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const after = await refundStatus(env, order.combine_out_trade_no, r.body.out_refund_no, 'SUCCESS');
    expect(after.sub_orders[0]!.refunded_amount).toBe(1234);
    const log = (await sandboxRequests(env.sandboxUrl, { path: '/v3/refund/domestic/refunds' })).filter((q) => q.method === 'POST');
    expect(log.at(-1)!.mchid).toBe(order.sub_orders[0]!.mchid);
  }, 60_000);

  it('10 parallel refunds of 40% each: exactly two succeed, the rest are REFUND_EXCEEDS_PAID, the total never above what was paid', async () => {
    const order = await paidOrder(env, [1000, 500]);
    const sub = order.sub_orders[0]!;
    const results = await Promise.all(Array.from({ length: 10 }, () => refund(env, order.combine_out_trade_no, { out_trade_no: sub.out_trade_no, amount: 400 })));
    const ok = results.filter((r) => r.status === 201);
    expect(ok).toHaveLength(2);
    expect(results.filter((r) => r.status === 409).every((r) => r.body.code === 'REFUND_EXCEEDS_PAID')).toBe(true);
    expect(results.filter((r) => r.status === 409)).toHaveLength(8);
    for (const r of ok) await refundStatus(env, order.combine_out_trade_no, r.body.out_refund_no, 'SUCCESS');
    const upstream = (await sandboxRefunds(env)).filter((r) => r.out_trade_no === sub.out_trade_no);
    expect(upstream.reduce((s, r) => s + r.amount.refund, 0)).toBe(800);
    const o = await getOrder(env, order.combine_out_trade_no);
    expect(o.sub_orders[0]!.refundable_amount).toBe(200);
  }, 60_000);

  it('refusals: not paid, not a sub-order of the order, bad amount; Idempotency-Key gives the same refund', async () => {
    const unpaid = await createOrder(env, [600, 700]);
    const r = await refund(env, unpaid.combine_out_trade_no, { out_trade_no: unpaid.sub_orders[0]!.out_trade_no, amount: 100 });
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('ORDER_NOT_PAID');
    const order = await paidOrder(env, [600, 700]);
    const other = await refund(env, order.combine_out_trade_no, { out_trade_no: unpaid.sub_orders[0]!.out_trade_no, amount: 100 });
    expect(other.status).toBe(400);
    expect((other.body as any).field).toBe('out_trade_no');
    for (const amount of [0, -5, 1.5, '100']) {
      const bad = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[0]!.out_trade_no, amount });
      expect(bad.status).toBe(400);
      expect((bad.body as any).field).toBe('amount');
    }
    const long = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[0]!.out_trade_no, amount: 1, reason: '长'.repeat(81) });
    expect((long.body as any).field).toBe('reason');
    expect((await refund(env, 'C000000000NOTHERE', { out_trade_no: order.sub_orders[0]!.out_trade_no, amount: 1 })).status).toBe(404);
    const key = { 'Idempotency-Key': 'refund-' + randomUUID() };
    const first = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[1]!.out_trade_no, amount: 300 }, key);
    const second = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[1]!.out_trade_no, amount: 300 }, key);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.out_refund_no).toBe(first.body.out_refund_no);
    const reused = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[1]!.out_trade_no, amount: 200 }, key);
    expect(reused.status).toBe(409);
    expect(reused.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await sandboxRefunds(env)).filter((x) => x.out_refund_no === first.body.out_refund_no)).toHaveLength(1);
  }, 60_000);

  it('ABNORMAL and CLOSED outcomes: ABNORMAL alerts and keeps its amount taken, CLOSED frees it', async () => {
    const order = await paidOrder(env, [900, 400]);
    const sub = order.sub_orders[0]!;
    await armRefundOutcome(env.sandboxUrl, { outcome: 'ABNORMAL', count: 1 });
    const ab = await refund(env, order.combine_out_trade_no, { out_trade_no: sub.out_trade_no, amount: 300 });
    expect(ab.status).toBe(201);
    const o1 = await refundStatus(env, order.combine_out_trade_no, ab.body.out_refund_no, 'ABNORMAL');
    expect(o1.sub_orders[0]!.refundable_amount).toBe(600);
    expect(o1.sub_orders[0]!.refunded_amount).toBe(0);
    const alerts = await api(env.relayUrl, 'GET', '/v1/alerts', env.manager);
    expect(alerts.body.alerts.some((a: { kind: string; message: string }) => a.kind === 'REFUND_ABNORMAL' && a.message.includes(ab.body.out_refund_no))).toBe(true);
    await armRefundOutcome(env.sandboxUrl, { outcome: 'CLOSED', count: 1 });
    const cl = await refund(env, order.combine_out_trade_no, { out_trade_no: sub.out_trade_no, amount: 600 });
    expect(cl.status).toBe(201);
    const o2 = await refundStatus(env, order.combine_out_trade_no, cl.body.out_refund_no, 'CLOSED');
    expect(o2.sub_orders[0]!.refundable_amount).toBe(600);
  }, 60_000);

  it('WeChat Pay answers FREQUENCY_LIMITED (a second refund within a minute): 409 REFUND_TOO_SOON, nothing taken', async () => {
    const order = await paidOrder(env, [500, 500]);
    await sandboxFaults(env.sandboxUrl, { path: '/v3/refund/domestic/refunds', method: 'POST', kind: 'FREQUENCY_LIMITED', count: 5 });
    const r = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[0]!.out_trade_no, amount: 100 });
    await api(env.sandboxUrl, 'DELETE', '/sandbox/control/faults', null);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('REFUND_TOO_SOON');
    expect(r.body.retry_after_seconds).toBeGreaterThan(0);
    const o = await getOrder(env, order.combine_out_trade_no);
    expect(o.refunds).toHaveLength(0);
    expect(o.sub_orders[0]!.refundable_amount).toBe(500);
  }, 60_000);
});

describe('refund notifications: forged and duplicate', () => {
  let env: Env;
  beforeAll(async () => {
    // The sandbox's own SUCCESS comes only after two minutes: the test's notifications decide.
    env = await startEnv({ queryAfterSeconds: 3600, refundDelayMs: 120_000, refundMinIntervalSeconds: 0 });
  }, 60_000);
  afterAll(async () => env?.close());

  it('forged ones change nothing; a genuine one delivered twice (concurrently) applies once and pushes once', async () => {
    const order = await paidOrder(env, [2000, 1000]);
    const sub = order.sub_orders[0]!;
    const created = await refund(env, order.combine_out_trade_no, { out_trade_no: sub.out_trade_no, amount: 700 });
    expect(created.status).toBe(201);
    const r = (await refundStatus(env, order.combine_out_trade_no, created.body.out_refund_no, 'PROCESSING')).refunds![0]!;
    expect(r.refund_id).toBeTruthy();
    const forge = new RefundForge(env, sub.mchid);
    const events = await EventsClient.connect(env, env.manager);
    // A stranger's key: refused at verification.
    expect((await post(env.relayUrl, forge.build(r, 2000, { key: NotificationForge.strangerKey() }))).status).toBe(401);
    // Genuinely signed by that merchant, but another amount than recorded: refused and alerted.
    const wrong = forge.build(r, 2000, { amount: 2000 });
    const w = await post(env.relayUrl, wrong);
    expect(w.status).toBe(400);
    // Signed by the merchant, about another merchant: MERCHANT_MISMATCH.
    const otherMchid = order.sub_orders[1]!.mchid;
    expect((await post(env.relayUrl, forge.build(r, 2000, { mchid: otherMchid }))).status).toBe(400);
    expect((await getOrder(env, order.combine_out_trade_no)).refunds![0]!.status).toBe('PROCESSING');
    const alerts = (await api(env.relayUrl, 'GET', '/v1/alerts', env.manager)).body.alerts as { kind: string }[];
    expect(alerts.some((a) => a.kind === 'REFUND_MISMATCH')).toBe(true);
    expect(alerts.some((a) => a.kind === 'MERCHANT_MISMATCH')).toBe(true);
    // The genuine notification, delivered twice at once, then once more.
    const id = randomUUID();
    const good = forge.build(r, 2000, { id });
    const answers = await Promise.all([post(env.relayUrl, good), post(env.relayUrl, good)]);
    expect(answers.map((a) => a.status)).toEqual([204, 204]);
    expect((await post(env.relayUrl, forge.build(r, 2000, { id }))).status).toBe(204);
    const o = await getOrder(env, order.combine_out_trade_no);
    expect(o.refunds![0]!.status).toBe('SUCCESS');
    expect(o.sub_orders[0]!.refunded_amount).toBe(700);
    await events.next((m) => m.type === 'order.updated' && m.order.refunds?.[0]?.status === 'SUCCESS');
    // A heartbeat-free wait for anything else that might be pushed: one more change to the order
    // (a new refund) must be the next push after the SUCCESS one.
    const next = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[1]!.out_trade_no, amount: 100 });
    expect(next.status).toBe(201);
    await events.next((m) => m.type === 'order.updated' && (m.order.refunds?.length ?? 0) === 2);
    const successPushes = events.updates(order.combine_out_trade_no).filter((x) => x.refunds?.[0]?.status === 'SUCCESS' && x.refunds.length === 1);
    expect(successPushes).toHaveLength(1);
    events.close();
  }, 60_000);
});

describe('a lost refund answer', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 1, refundDelayMs: 4000, refundMinIntervalSeconds: 0, client: { timeoutMs: 1000, maxRetries: 0 } });
  }, 60_000);
  afterAll(async () => env?.close());

  it('is recovered by query: the refund completes once', async () => {
    const order = await paidOrder(env, [1800, 600]);
    const sub = order.sub_orders[0]!;
    // WeChat Pay makes the refund, then answers too late for the relay's 1 s timeout.
    await sandboxFaults(env.sandboxUrl, { path: '/v3/refund/domestic/refunds', method: 'POST', kind: 'SLOW', delay_ms: 2500, count: 1 });
    const r = await refund(env, order.combine_out_trade_no, { out_trade_no: sub.out_trade_no, amount: 500 });
    expect(r.status).toBe(201);
    expect(r.body.status).toBe('PROCESSING');
    expect(r.body.refund_id).toBeNull();
    expect(r.body.error_code).toBe('TIMEOUT');
    const o = await refundStatus(env, order.combine_out_trade_no, r.body.out_refund_no, 'SUCCESS');
    expect(o.refunds![0]!.refund_id).toBeTruthy();
    expect(o.sub_orders[0]!.refunded_amount).toBe(500);
    const log = await sandboxRequests(env.sandboxUrl, { path: `/v3/refund/domestic/refunds/${r.body.out_refund_no}` });
    expect(log.some((q) => q.method === 'GET' && q.mchid === sub.mchid)).toBe(true);
    expect((await sandboxRefunds(env)).filter((x) => x.out_refund_no === r.body.out_refund_no)).toHaveLength(1);
  }, 60_000);
});

describe('a participant without keys', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, refundMinIntervalSeconds: 0, init: { modes: { participants: ['public_key', 'none', 'public_key'] } } });
  }, 60_000);
  afterAll(async () => env?.close());

  it('its sub-order cannot be refunded here: 409 MERCHANT_KEYS_MISSING naming it, nothing recorded', async () => {
    const order = await paidOrder(env, [700, 800]);
    const r = await refund(env, order.combine_out_trade_no, { out_trade_no: order.sub_orders[1]!.out_trade_no, amount: 100 });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'MERCHANT_KEYS_MISSING', mchid: order.sub_orders[1]!.mchid });
    expect((await getOrder(env, order.combine_out_trade_no)).refunds).toHaveLength(0);
  }, 60_000);
});
