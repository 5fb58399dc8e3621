import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DayEndReport, ShiftReport } from '../../shared/contracts/counter-api';
import type { Order } from '../../shared/contracts/relay-api';
import { fenToYuan } from '../../shared/relay/reports';
import { api, createOrder, pay, startEnv, until, type Env } from './env';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ closeMinAgeSeconds: 0 });
});
afterAll(async () => env?.close());

const beijingToday = () => new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);

async function paid(order: Order, notify = true): Promise<void> {
  expect((await pay(env, order, notify ? {} : { notify: false })).status).toBe(200);
  await until(async () => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}${notify ? '' : '?sync=1'}`, env.cashier)).body.state === 'SUCCESS');
}

describe('yuan from fen', () => {
  it('is integer arithmetic with two decimals', () => {
    expect(fenToYuan(0)).toBe('0.00');
    expect(fenToYuan(5)).toBe('0.05');
    expect(fenToYuan(123456789)).toBe('1234567.89');
    expect(fenToYuan(-1005)).toBe('-10.05');
    expect(() => fenToYuan(1.5)).toThrow();
  });
});

describe('shift and day-end figures', () => {
  let shiftId: number;
  let closedReport: ShiftReport;
  const [a, b, c] = [0, 1, 2];

  it('a cashier opens a shift (one at a time), sells, and the report adds up', async () => {
    const m = env.merchant.sub_merchants;
    expect(m.length).toBeGreaterThanOrEqual(3);
    const before = await createOrder(env, [100, 200]);
    await paid(before); // before the shift: not in it
    const open = await api(env.relayUrl, 'POST', '/v1/shifts', env.cashier, { cashier: '小王' });
    expect(open.status).toBe(201);
    shiftId = open.body.id;
    expect(open.body).toMatchObject({ terminal: 'till-1', cashier: '小王', closed_at: null });
    expect((await api(env.relayUrl, 'POST', '/v1/shifts', env.cashier, {})).body.code).toBe('SHIFT_OPEN');
    expect((await api(env.relayUrl, 'GET', '/v1/shifts/current', env.cashier)).body.shift.id).toBe(shiftId);
    expect((await api(env.relayUrl, 'POST', '/v1/shifts', env.cashier, { cashier: 'x'.repeat(21) })).body.field).toBe('cashier');

    // Three merchants in one sale (one sale, not three), two merchants in another (paid by query), one open.
    const s1 = await createOrder(env, [1000, 2000, 3005]);
    const s2 = await createOrder(env, [1500, 2500]);
    const s3 = await createOrder(env, [700, 800]);
    await paid(s1);
    await paid(s2, false);
    void s3;
    // A manager refunds ¥10.00 of the first merchant's part of s1 (signed by that merchant).
    const rf = await api(env.relayUrl, 'POST', `/v1/orders/${s1.combine_out_trade_no}/refunds`, env.manager,
      { out_trade_no: s1.sub_orders[0]!.out_trade_no, amount: 1000, reason: '退一份' }, { 'Idempotency-Key': 'refund-report-1' });
    expect(rf.status).toBe(201);
    await until(async () => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${s1.combine_out_trade_no}`, env.cashier)).body.refunds?.[0]?.status === 'SUCCESS');
    const live = await api<ShiftReport>(env.relayUrl, 'GET', `/v1/shifts/${shiftId}/report`, env.cashier);
    expect(live.status).toBe(200);
    expect(live.body.sales).toEqual({ count: 2, amount: 6005 + 4000 });
    const by = new Map(live.body.merchants.map((x) => [x.mchid, x]));
    expect(by.get(m[a]!.mchid)).toMatchObject({ count: 2, amount: 2500, refund_count: 1, refund_amount: 1000, net: 1500, name: m[a]!.name });
    expect(by.get(m[b]!.mchid)).toMatchObject({ count: 2, amount: 4500 });
    expect(by.get(m[c]!.mchid)).toMatchObject({ count: 1, amount: 3005 });
    expect(live.body.merchants.reduce((x, y) => x + y.amount, 0)).toBe(live.body.sales.amount);
    expect(live.body.open_orders).toEqual({ count: 1, amount: 1500 });
    expect(live.body.refunds).toEqual({ count: 1, amount: 1000, available: true, note: null });
    expect(live.body.net).toBe(10005 - 1000);
    expect(live.body.merchants.reduce((x, y) => x + y.net, 0)).toBe(live.body.net);

    // Another terminal cannot read or close it; a manager can read it.
    expect((await api(env.relayUrl, 'GET', `/v1/shifts/${shiftId}/report`, env.manager)).status).toBe(200);

    const closed = await api<ShiftReport>(env.relayUrl, 'POST', `/v1/shifts/${shiftId}/close`, env.cashier, {});
    expect(closed.status).toBe(200);
    closedReport = closed.body;
    expect(closed.body.sales).toEqual(live.body.sales);
    expect(closed.body.shift.closed_by).toBe('till-1');
    expect((await api(env.relayUrl, 'POST', `/v1/shifts/${shiftId}/close`, env.cashier, {})).body.code).toBe('SHIFT_CLOSED');
    expect((await api(env.relayUrl, 'GET', '/v1/shifts/current', env.cashier)).body.shift).toBeNull();
    // A sale after the close does not change the stored report.
    await paid(await createOrder(env, [900, 100]));
    const later = await api<ShiftReport>(env.relayUrl, 'GET', `/v1/shifts/${shiftId}/report`, env.cashier);
    expect(later.body.sales).toEqual(closedReport.sales);
  });

  it('exports the shift as CSV: BOM, CRLF, Chinese, yuan strings', async () => {
    const res = await fetch(`${env.relayUrl}/v1/shifts/${shiftId}/report?format=csv`, { headers: { Authorization: `Bearer ${env.cashier}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const bytes = Buffer.from(await res.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = bytes.subarray(3).toString('utf8');
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text).toContain('收银员 Cashier,小王\r\n');
    const m = env.merchant.sub_merchants;
    expect(text).toContain(`${m[c]!.mchid},${m[c]!.name},1,30.05,0,0.00,30.05\r\n`);
    expect(text).toContain(`${m[a]!.mchid},${m[a]!.name},2,25.00,1,10.00,15.00\r\n`);
    expect(text).toContain('合计 Total,,2,100.05,1,10.00,90.05\r\n');
    expect(text).toContain('未付订单 Open orders,1,15.00\r\n');
    expect((await api(env.relayUrl, 'GET', `/v1/shifts/${shiftId}/report?format=xml`, env.cashier)).body.field).toBe('format');
  });

  it('takings count a sale once; day-end covers every terminal with the bill status', async () => {
    const today = beijingToday();
    const t = await api(env.relayUrl, 'GET', `/v1/takings?date=${today}`, env.cashier);
    expect(t.body.count).toBe(4); // before, s1, s2, after
    expect(t.body.gross_amount).toBe(300 + 6005 + 4000 + 1000);
    expect(t.body.amount).toBe(300 + 6005 + 4000 + 1000 - 1000);
    const d0 = await api<DayEndReport>(env.relayUrl, 'GET', `/v1/reports/day-end?date=${today}`, env.manager);
    expect(d0.status).toBe(200);
    expect(d0.body.sales).toEqual({ count: 4, amount: 11305 });
    expect(d0.body.refunds).toMatchObject({ count: 1, amount: 1000 });
    expect(d0.body.net).toBe(10305);
    expect(d0.body.merchants.every((x) => x.bill_status === 'NEVER_RUN')).toBe(true);
    expect(d0.body.terminals).toEqual([{ terminal: 'till-1', count: 4, amount: 11305 }]);
    expect(d0.body.shifts.map((s) => s.id)).toEqual([shiftId]);
    expect(d0.body.open_orders.count).toBe(1);
    expect(d0.body.merchants.reduce((x, y) => x + y.amount, 0)).toBe(11305);
    expect((await api(env.relayUrl, 'GET', '/v1/reports/day-end?date=2026-02-30', env.manager)).body.field).toBe('date');

    // Bill reconciliation of the day (the sandbox's clock moved on so the bill exists).
    await api(env.sandboxUrl, 'POST', '/sandbox/control/clock', null, { offset_seconds: 36 * 3600 });
    const run = await api(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(run.status).toBe(200);
    await api(env.sandboxUrl, 'POST', '/sandbox/control/clock', null, { offset_seconds: 0 });
    const d1 = await api<DayEndReport>(env.relayUrl, 'GET', `/v1/reports/day-end?date=${today}`, env.manager);
    const statuses = new Map(run.body.merchants.map((x: { mchid: string; status: string }) => [x.mchid, x.status]));
    for (const x of d1.body.merchants) expect(x.bill_status).toBe(statuses.get(x.mchid) ?? 'NEVER_RUN');
    expect(d1.body.bill_run_at).toBeTruthy();

    const res = await fetch(`${env.relayUrl}/v1/reports/day-end?date=${today}&format=csv`, { headers: { Authorization: `Bearer ${env.manager}` } });
    const bytes = Buffer.from(await res.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = bytes.subarray(3).toString('utf8');
    expect(text).toContain(`日结报表 Day-end report,${today}\r\n`);
    expect(text).toContain('合计 Total,,4,113.05,1,10.00,103.05\r\n');
    expect(text).toContain('till-1,4,113.05\r\n');
  });
});
