import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order, ReconciliationReport } from '../../shared/contracts/relay-api';
import { beijingDate } from '../../shared/wechatpay/time';
import { api, createOrder, EventsClient, pay, startEnv, until, type Env } from './env';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ queryAfterSeconds: 3600 });
});
afterAll(async () => env?.close());

const state = async (no: string) => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body.state;

describe('trade bills', () => {
  it('fetches every sub-merchant bill, stores rows and reports injected mismatches', async () => {
    const today = beijingDate(Date.now());
    const [a, b, c, d] = [await createOrder(env, [1000, 2000]), await createOrder(env, [1100, 2100]), await createOrder(env, [1200, 2200]), await createOrder(env, [1300, 2300])];
    for (const o of [a, b, c]) await pay(env, o);
    await pay(env, d, { notify: false }); // paid at WeChat, unknown to the relay
    for (const o of [a, b, c]) await until(async () => (await state(o.combine_out_trade_no)) === 'SUCCESS');
    expect(await state(d.combine_out_trade_no)).toBe('NOTPAY');
    const adj = (body: unknown) => api(env.sandboxUrl, 'POST', '/sandbox/control/bill-adjust', null, body);
    expect((await adj({ out_trade_no: b.sub_orders[0]!.out_trade_no, amount: 1099 })).status).toBe(200);
    expect((await adj({ out_trade_no: c.sub_orders[1]!.out_trade_no, drop: true })).status).toBe(200);
    expect((await adj({ extra: { mchid: a.sub_orders[0]!.mchid, out_trade_no: 'SFOREIGN000001', amount: 555 } })).status).toBe(200);
    // Tomorrow 10:00 Beijing has passed for the simulator: today's bills are ready.
    await api(env.sandboxUrl, 'POST', '/sandbox/control/clock', null, { offset_seconds: 36 * 3600 });

    const ws = await EventsClient.connect(env, env.manager);
    const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(r.status).toBe(200);
    const rep = r.body;
    expect(rep.bill_date).toBe(today);
    expect(rep.ok).toBe(false);
    const kinds = rep.mismatches.map((m) => `${m.kind}:${m.out_trade_no}`).sort();
    expect(kinds).toEqual([
      `AMOUNT_MISMATCH:${b.sub_orders[0]!.out_trade_no}`,
      `MISSING_IN_BILL:${c.sub_orders[1]!.out_trade_no}`,
      `NOT_PAID_LOCALLY:${d.sub_orders[0]!.out_trade_no}`,
      `NOT_PAID_LOCALLY:${d.sub_orders[1]!.out_trade_no}`,
      'UNKNOWN_ORDER:SFOREIGN000001',
    ].sort());
    const amt = rep.mismatches.find((m) => m.kind === 'AMOUNT_MISMATCH')!;
    expect(amt).toMatchObject({ local_amount: 1100, bill_amount: 1099, combine_out_trade_no: b.combine_out_trade_no });
    const [m0, m1, m2] = rep.merchants;
    expect(m0).toMatchObject({ status: 'OK', local_count: 3, local_amount: 1000 + 1100 + 1200, bill_count: 5, bill_amount: 1000 + 1099 + 1200 + 1300 + 555 });
    expect(m1).toMatchObject({ status: 'OK', local_count: 3, local_amount: 2000 + 2100 + 2200, bill_count: 3, bill_amount: 2000 + 2100 + 2300 });
    expect(m2!.status).toBe('NO_STATEMENT');
    expect(rep.merchants).toHaveLength(env.merchant.sub_merchants.length);
    // Progress was pushed while it ran.
    await ws.next((m) => m.type === 'bill.progress' && m.stage === 'done');
    expect(ws.messages.filter((m) => m.type === 'bill.progress').length).toBeGreaterThanOrEqual(env.merchant.sub_merchants.length);
    ws.close();
    const db = new Database(env.config.dbPath, { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM bill_rows WHERE bill_date = ?').get(today) as { n: number }).n).toBe(8);
    expect(db.prepare("SELECT terminal FROM audit_log WHERE action = 'bill_run'").all()).toEqual([{ terminal: 'boss' }]);
    db.close();
    // Bad input names the field.
    const bad = await api(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: '2026/01/01' });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('bill_date');
  });
});
