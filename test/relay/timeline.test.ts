import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderTimeline } from '../../shared/contracts/counter-api';
import type { Order } from '../../shared/contracts/relay-api';
import { api, createOrder, pay, startEnv, until, type Env } from './env';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ closeMinAgeSeconds: 0 });
});
afterAll(async () => env?.close());

const timeline = async (no: string) => (await api<OrderTimeline>(env.relayUrl, 'GET', `/v1/orders/${no}/timeline`, env.cashier)).body;
const state = async (no: string, sync = false) => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}${sync ? '?sync=1' : ''}`, env.cashier)).body;

describe('order timeline', () => {
  it('created, QR issued, slip printed (reported by the terminal), paid via notification, receipt reprinted', async () => {
    const o = await createOrder(env);
    const no = o.combine_out_trade_no;
    expect((await api(env.relayUrl, 'POST', `/v1/orders/${no}/events`, env.cashier, { type: 'printed', kind: 'slip', reprint: false })).status).toBe(201);
    await pay(env, o);
    await until(async () => (await state(no)).state === 'SUCCESS');
    expect((await api(env.relayUrl, 'POST', `/v1/orders/${no}/events`, env.cashier, { type: 'printed', kind: 'receipt', reprint: true })).status).toBe(201);
    const t = await timeline(no);
    expect(t.entries.map((e) => e.type)).toEqual(['created', 'qr_issued', 'printed', 'paid', 'printed']);
    expect(t.entries[0]!.by).toBe('till-1');
    expect(t.entries[2]).toMatchObject({ by: 'till-1', detail: { kind: 'slip', reprint: false } });
    const paid = t.entries[3]!;
    expect(paid.detail.via).toBe('notification');
    const ids = paid.detail.transaction_ids as Record<string, string>;
    expect(Object.keys(ids).sort()).toEqual(o.sub_orders.map((s) => s.out_trade_no).sort());
    expect(Object.values(ids).every((x) => /^4200/.test(x) || x.length > 10)).toBe(true);
    expect(t.entries[4]!.detail).toEqual({ kind: 'receipt', reprint: true });
  });

  it('paid via query when no notification came; found by its transaction id and sub-order number', async () => {
    const o = await createOrder(env);
    const no = o.combine_out_trade_no;
    await pay(env, o, { notify: false });
    await until(async () => (await state(no, true)).state === 'SUCCESS');
    const t = await timeline(no);
    expect(t.entries.find((e) => e.type === 'paid')!.detail.via).toBe('query');
    const txid = (await state(no)).sub_orders[1]!.transaction_id!;
    const found = await api(env.relayUrl, 'GET', `/v1/orders?q=${txid}`, env.cashier);
    expect(found.body.orders.map((x: Order) => x.combine_out_trade_no)).toEqual([no]);
    const bySub = await api(env.relayUrl, 'GET', `/v1/orders?q=${o.sub_orders[1]!.out_trade_no}`, env.cashier);
    expect(bySub.body.orders.map((x: Order) => x.combine_out_trade_no)).toEqual([no]);
  });

  it('closed by whom (a manager), and an early refused close is shown', async () => {
    const o = await createOrder(env);
    const no = o.combine_out_trade_no;
    expect((await api(env.relayUrl, 'POST', `/v1/orders/${no}/close`, env.manager, {})).status).toBe(200);
    const t = await timeline(no);
    expect(t.entries.map((e) => e.type)).toEqual(['created', 'qr_issued', 'closed']);
    expect(t.entries[2]!.by).toBe('boss');
  });

  it('refuses bad events (naming the field), unknown orders and missing tokens', async () => {
    const o = await createOrder(env);
    const no = o.combine_out_trade_no;
    const bad = await api(env.relayUrl, 'POST', `/v1/orders/${no}/events`, env.cashier, { type: 'printed', kind: 'menu', reprint: false });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('kind');
    expect((await api(env.relayUrl, 'POST', `/v1/orders/${no}/events`, env.cashier, { type: 'printed', kind: 'slip', reprint: 'yes' })).body.field).toBe('reprint');
    expect((await api(env.relayUrl, 'POST', `/v1/orders/${no}/events`, env.cashier, { type: 'sold', kind: 'slip' })).body.field).toBe('type');
    expect((await api(env.relayUrl, 'GET', '/v1/orders/NOPE123/timeline', env.cashier)).status).toBe(404);
    expect((await api(env.relayUrl, 'POST', '/v1/orders/NOPE123/events', env.cashier, { type: 'printed', kind: 'slip', reprint: false })).status).toBe(404);
    expect((await api(env.relayUrl, 'GET', `/v1/orders/${no}/timeline`, null)).status).toBe(401);
  });
});
