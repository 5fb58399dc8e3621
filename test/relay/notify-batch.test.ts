/**
 * Group commit (shared/relay/notify.ts): notifications arriving together share one transaction,
 * each in its own savepoint. A burst mixing genuine ones, duplicates and refused ones must give
 * each exactly the answer and the effect it would get alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrder, EventsClient, startEnv, type Env } from './env';
import { NotificationForge, post } from './forge';

let env: Env;
let forge: NotificationForge;
beforeAll(async () => {
  env = await startEnv({ queryAfterSeconds: 3600 });
  forge = new NotificationForge(env.dir);
});
afterAll(async () => env?.close());

const orderOf = async (no: string) => (await api(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body;

describe('notifications arriving together', () => {
  it('genuine ones apply once each, a refused one among them rolls back alone (its id not kept)', async () => {
    const orders = await Promise.all(Array.from({ length: 6 }, () => createOrder(env, [2800, 1500])));
    const ws = await EventsClient.connect(env, env.cashier);
    await ws.next((m) => m.type === 'snapshot');
    const genuine = orders.slice(0, 4).map((o) => forge.build(o));
    const wrongAmountId = 'EV-batch-amount-' + orders[4]!.combine_out_trade_no;
    const wrongAmount = forge.build(orders[4]!, { id: wrongAmountId, amounts: [2800, 1] });
    const wrongMchid = forge.build(orders[5]!, { mchids: [orders[5]!.sub_orders[1]!.mchid, orders[5]!.sub_orders[0]!.mchid] });
    // Each genuine one three times (duplicates in the same burst), the refused ones in between.
    const burst = [...genuine, wrongAmount, ...genuine, wrongMchid, ...genuine];
    const replies = await Promise.all(burst.map((n) => post(env.relayUrl, n)));
    replies.forEach((r, i) => {
      const n = burst[i]!;
      expect(r.status, `reply ${i}`).toBe(n === wrongAmount || n === wrongMchid ? 400 : 204);
    });
    for (const o of orders.slice(0, 4)) {
      const got = await orderOf(o.combine_out_trade_no);
      expect(got.state).toBe('SUCCESS');
      expect(got.sub_orders.every((s: { transaction_id: string | null }) => typeof s.transaction_id === 'string')).toBe(true);
      await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === o.combine_out_trade_no && m.order.state === 'SUCCESS');
    }
    expect((await orderOf(orders[4]!.combine_out_trade_no)).state).toBe('NOTPAY');
    expect((await orderOf(orders[5]!.combine_out_trade_no)).state).toBe('NOTPAY');
    // The refused notification's id was rolled back with it: the same id, now genuine, applies.
    expect((await post(env.relayUrl, forge.build(orders[4]!, { id: wrongAmountId }))).status).toBe(204);
    expect((await orderOf(orders[4]!.combine_out_trade_no)).state).toBe('SUCCESS');
    await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === orders[4]!.combine_out_trade_no && m.order.state === 'SUCCESS');
    // One SUCCESS push per paid order, whatever the duplicates.
    for (const o of orders.slice(0, 5)) expect(ws.updates(o.combine_out_trade_no).filter((u) => u.state === 'SUCCESS')).toHaveLength(1);
    ws.close();
  });
});
