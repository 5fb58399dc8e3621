import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order } from '../../shared/contracts/relay-api';
import { api, createOrder, EventsClient, pay, startEnv, until, type Env } from './env';

let env: Env;
beforeAll(async () => {
  // The sandbox's own close rule is off: the relay's is under test, through the clock seam below.
  env = await startEnv({ queryAfterSeconds: 3600, closeMinAgeSeconds: 2, sandboxCloseMinAgeSeconds: 0 });
});
afterAll(async () => env?.close());

const close = (no: string, token = env.manager) => api(env.relayUrl, 'POST', `/v1/orders/${no}/close`, token);

/**
 * The clock seam: the minimum-age rule compares the order's stored creation time with now,
 * so moving that time back ages the order without sleeping.
 */
async function age(no: string, ms: number): Promise<void> {
  await env.sql('UPDATE orders SET created_ms = created_ms - ? WHERE combine_out_trade_no = ?', ms, no);
}

describe('closing orders', () => {
  it('refuses within the minimum age with retry_after_seconds, then closes and pushes', async () => {
    const ws = await EventsClient.connect(env, env.cashier);
    const order = await createOrder(env);
    const early = await close(order.combine_out_trade_no);
    expect(early.status).toBe(409);
    expect(early.body.code).toBe('CLOSE_TOO_EARLY');
    expect(early.body.retry_after_seconds).toBeGreaterThanOrEqual(1);
    expect(early.body.retry_after_seconds).toBeLessThanOrEqual(2);
    expect((await close(order.combine_out_trade_no, env.cashier)).status).toBe(403);
    await age(order.combine_out_trade_no, 2100);
    const done = await close(order.combine_out_trade_no);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ state: 'CLOSED' });
    expect(done.body.closed_at).toBeTruthy();
    await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'CLOSED');
    // WeChat's side is closed too: paying now fails.
    const late = await pay(env, order);
    expect(late.status).not.toBe(200);
    // Closing again is harmless.
    expect((await close(order.combine_out_trade_no)).body.state).toBe('CLOSED');
    ws.close();
  });

  it('queries first: a paid order answers ORDER_PAID and is marked paid', async () => {
    const order = await createOrder(env);
    await pay(env, order, { notify: false });
    await age(order.combine_out_trade_no, 2100);
    const r = await close(order.combine_out_trade_no);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('ORDER_PAID');
    const now = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}`, env.cashier);
    expect(now.body.state).toBe('SUCCESS');
  });

  it('closes expired orders automatically once closing is allowed, and audits every close', async () => {
    const order = await createOrder(env);
    // Make it look expired to the relay (as if its expire_minutes had passed).
    await env.sql('UPDATE orders SET expires_ms = ?, created_ms = created_ms - 2100, next_check_ms = 0 WHERE combine_out_trade_no = ?', Date.now() - 1, order.combine_out_trade_no);
    const closed = await until(async () => {
      const o = (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}`, env.cashier)).body;
      return o.state === 'CLOSED' ? o : null;
    }, 10_000);
    expect(closed.closed_at).toBeTruthy();
    const audit = await env.sql<any>("SELECT terminal, action, target, detail FROM audit_log WHERE action = 'close' ORDER BY id");
    expect(audit.some((a) => a.terminal === 'boss' && JSON.parse(a.detail).outcome === 'CLOSE_TOO_EARLY')).toBe(true);
    expect(audit.some((a) => a.terminal === 'boss' && JSON.parse(a.detail).outcome === 'CLOSED')).toBe(true);
    // The automatic close is audited too, by `auto`, for this order.
    expect(audit.filter((a) => a.target === order.combine_out_trade_no).map((a) => [a.terminal, JSON.parse(a.detail).outcome])).toEqual([['auto', 'CLOSED']]);
  });
});
