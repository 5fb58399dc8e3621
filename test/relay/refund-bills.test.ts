/**
 * Bill reconciliation of refunds: each merchant's own bill (ALL) carries its refund rows, matched
 * with the relay's refunds by out_refund_no. A day whose refunds agree is ok; a refund made
 * elsewhere (REFUND_UNKNOWN), one the relay holds that the bill lacks (REFUND_MISSING_IN_BILL)
 * and one with another amount (REFUND_AMOUNT_MISMATCH) are each reported.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order, ReconciliationReport, Refund } from '../../shared/contracts/relay-api';
import { loadCredentials } from '../../shared/wechatpay/credentials';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { beijingDate } from '../../shared/wechatpay/time';
import { api, createOrder, pay, startEnv, until, type Env } from './env';

async function paidOrder(env: Env, amounts: number[]): Promise<Order> {
  const o = await createOrder(env, amounts);
  await pay(env, o);
  return until(async () => {
    const r = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${o.combine_out_trade_no}`, env.cashier);
    return r.body.state === 'SUCCESS' && r.body;
  });
}

async function refundDone(env: Env, order: Order, sub: number, amount: number): Promise<Refund> {
  const r = await api<Refund>(env.relayUrl, 'POST', `/v1/orders/${order.combine_out_trade_no}/refunds`, env.manager, { out_trade_no: order.sub_orders[sub]!.out_trade_no, amount });
  expect(r.status).toBe(201);
  await until(async () => {
    const o = (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}`, env.cashier)).body;
    return o.refunds?.find((x) => x.out_refund_no === r.body.out_refund_no)?.status === 'SUCCESS';
  });
  return r.body;
}

const run = async (env: Env, date: string) => {
  const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: date });
  expect(r.status).toBe(200);
  return r.body;
};

describe('refund rows in the bills', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, refundDelayMs: 200, refundMinIntervalSeconds: 0 });
  }, 60_000);
  afterAll(async () => env?.close());

  it('match the relay\'s refunds; unknown, missing and different refunds are reported', async () => {
    const today = beijingDate(Date.now());
    const order = await paidOrder(env, [3000, 1500, 800]);
    const r1 = await refundDone(env, order, 0, 1000);
    const r2 = await refundDone(env, order, 1, 1500);
    // A refund made at WeChat Pay by the merchant itself (its platform), not through the relay.
    const other = await paidOrder(env, [900, 700]);
    const creds = loadCredentials(env.config.credentialsDir);
    const mchid = other.sub_orders[1]!.mchid;
    const client = WechatPayClient.fromCredentials(creds.participants.get(mchid)!, { baseUrl: env.sandboxUrl });
    const foreign = await client.createRefund({ out_trade_no: other.sub_orders[1]!.out_trade_no, out_refund_no: 'RFOREIGN0000001', amount: { refund: 200, total: 700, currency: 'CNY' } });
    expect(foreign.status).toBe('PROCESSING');
    client.close();
    // Bills of today are ready once the simulator's clock is past tomorrow 10:00.
    expect((await api(env.sandboxUrl, 'POST', '/sandbox/control/clock', null, { offset_seconds: 36 * 3600 })).status).toBe(200);

    const first = await run(env, today);
    expect(first.mismatches.map((m) => [m.kind, m.out_refund_no])).toEqual([['REFUND_UNKNOWN', 'RFOREIGN0000001']]);
    expect(first.ok).toBe(false);
    const ofA = first.merchants.find((m) => m.mchid === r1.mchid)!;
    expect(ofA).toMatchObject({ status: 'OK', bill_refund_count: 1, bill_refund_amount: 1000, local_refund_count: 1, local_refund_amount: 1000 });
    // The payments themselves still match (a refunded sub-order keeps its payment row).
    expect(first.mismatches.some((m) => m.kind === 'MISSING_IN_BILL' || m.kind === 'AMOUNT_MISMATCH')).toBe(false);

    // The relay's side diverges: one refund recorded with another amount, one the bill never saw.
    await env.sql('UPDATE refunds SET amount = 999 WHERE out_refund_no = ?', r1.out_refund_no);
    await env.sql(`INSERT INTO refunds (out_refund_no, combine_out_trade_no, out_trade_no, mchid, amount, total, status, created_at, created_ms, terminal, request_hash, next_check_ms, watch)
      VALUES ('RLOCALONLY00001', ?, ?, ?, 100, 800, 'SUCCESS', ?, ?, 'boss', 'x', 0, 0)`, order.combine_out_trade_no, order.sub_orders[2]!.out_trade_no, order.sub_orders[2]!.mchid, new Date().toISOString(), Date.now());
    const second = await run(env, today);
    const kinds = second.mismatches.map((m) => `${m.kind}:${m.out_refund_no}`).sort();
    expect(kinds).toEqual([`REFUND_AMOUNT_MISMATCH:${r1.out_refund_no}`, 'REFUND_MISSING_IN_BILL:RLOCALONLY00001', 'REFUND_UNKNOWN:RFOREIGN0000001'].sort());
    const diff = second.mismatches.find((m) => m.kind === 'REFUND_AMOUNT_MISMATCH')!;
    expect(diff).toMatchObject({ local_amount: 999, bill_amount: 1000, mchid: r1.mchid, out_trade_no: r1.out_trade_no });
    expect(r2.amount).toBe(1500);
  }, 90_000);
});
