/**
 * Bill reconciliation of a day with single-merchant and combined sales for every participant:
 * a single sale's basic order is a row of that merchant's own bill, matched like a combined
 * sale's sub-order, and reported under the relay's order id (combine_out_trade_no).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order, ReconciliationReport } from '../../shared/contracts/relay-api';
import { beijingDate } from '../../shared/wechatpay/time';
import { api, createOrder, pay, startEnv, until, type Env } from './env';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ queryAfterSeconds: 3600 });
});
afterAll(async () => env?.close());

async function single(mchid: string, amount: number): Promise<Order> {
  const r = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, { sub_orders: [{ mchid, description: '单品', amount }] });
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const run = async (date: string) => {
  const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: date });
  expect(r.status).toBe(200);
  return r.body;
};

describe('reconciliation with single and combined sales', () => {
  it('matches every participant’s single and combined sales against its own bill; a differing single sale is named by the relay order id', async () => {
    const today = beijingDate(Date.now());
    const merchants = env.merchant.sub_merchants.map((m) => m.mchid);
    const n = merchants.length;
    // Per participant: two single sales; plus two combined sales in which every participant sells.
    const singles: Order[] = [];
    for (const [i, m] of merchants.entries()) singles.push(await single(m, 500 + i), await single(m, 600 + i));
    const combined = [
      await createOrder(env, merchants.map((_, i) => 100 + i)),
      await createOrder(env, merchants.map((_, i) => 200 + i)),
    ];
    expect(singles.every((o) => o.kind === 'single')).toBe(true);
    expect(combined.every((o) => o.kind === 'combine')).toBe(true);
    const all = [...singles, ...combined];
    for (const o of all) expect((await pay(env, o)).status).toBe(200);
    for (const o of all) {
      await until(async () => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${o.combine_out_trade_no}`, env.cashier)).body.state === 'SUCCESS');
    }
    // Tomorrow 10:00 Beijing has passed for the simulator: today's bills are ready.
    await api(env.sandboxUrl, 'POST', '/sandbox/control/clock', null, { offset_seconds: 36 * 3600 });

    const clean = await run(today);
    expect(clean.mismatches).toEqual([]);
    clean.merchants.forEach((m, i) => {
      const amount = 500 + i + 600 + i + 100 + i + 200 + i;
      expect(m).toMatchObject({ mchid: merchants[i], status: 'OK', bill_count: 4, local_count: 4, bill_amount: amount, local_amount: amount });
    });
    expect(clean.merchants).toHaveLength(n);
    expect(clean.ok).toBe(true);

    // The bill differs on one single sale's amount, and lacks another: both found, named by
    // the sub-order (the basic order's out_trade_no) and the relay's order id.
    const [s0, , s2] = singles;
    const adj = (body: unknown) => api(env.sandboxUrl, 'POST', '/sandbox/control/bill-adjust', null, body);
    expect((await adj({ out_trade_no: s0!.sub_orders[0]!.out_trade_no, amount: 499 })).status).toBe(200);
    expect((await adj({ out_trade_no: s2!.sub_orders[0]!.out_trade_no, drop: true })).status).toBe(200);
    const rep = await run(today);
    expect(rep.ok).toBe(false);
    expect(rep.mismatches.map((m) => [m.kind, m.mchid, m.out_trade_no, m.combine_out_trade_no, m.local_amount, m.bill_amount]).sort()).toEqual([
      ['AMOUNT_MISMATCH', merchants[0], s0!.sub_orders[0]!.out_trade_no, s0!.combine_out_trade_no, 500, 499],
      ['MISSING_IN_BILL', merchants[1], s2!.sub_orders[0]!.out_trade_no, s2!.combine_out_trade_no, 501, null],
    ].sort());
    const missing = rep.mismatches.find((m) => m.kind === 'MISSING_IN_BILL')!;
    expect(missing.transaction_id).toBe((await api<Order>(env.relayUrl, 'GET', `/v1/orders/${s2!.combine_out_trade_no}`, env.cashier)).body.sub_orders[0]!.transaction_id);
  });
});
