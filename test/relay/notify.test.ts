import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrder, EventsClient, startEnv, until, type Env } from './env';
import { NotificationForge, post } from './forge';

let env: Env;
let forge: NotificationForge;
const logLines: string[] = [];
beforeAll(async () => {
  env = await startEnv({ queryAfterSeconds: 3600, logLines });
  forge = new NotificationForge(env.dir);
});
afterAll(async () => env?.close());

/**
 * Pushes are sent in order: once a later change's push has arrived, every push sent before it
 * (a duplicate included) has arrived too. The later change: a new order created.
 */
async function barrier(ws: EventsClient): Promise<void> {
  const later = await createOrder(env);
  await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === later.combine_out_trade_no);
}

const stateOf = async (no: string) => (await api(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body.state;

describe('payment notifications', () => {
  it('200 concurrent deliveries of one notification: one transition, one push', async () => {
    const order = await createOrder(env);
    const ws = await EventsClient.connect(env, env.cashier);
    await ws.next((m) => m.type === 'snapshot');
    const n = forge.build(order, { id: 'EV-dup-' + order.combine_out_trade_no });
    const replies = await Promise.all(Array.from({ length: 200 }, () => post(env.relayUrl, n)));
    expect(replies.every((r) => r.status === 204)).toBe(true);
    expect(await stateOf(order.combine_out_trade_no)).toBe('SUCCESS');
    await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS');
    await barrier(ws);
    expect(ws.updates(order.combine_out_trade_no).filter((o) => o.state === 'SUCCESS')).toHaveLength(1);
    // A later re-delivery with a new id is still a no-op (the state is final).
    expect((await post(env.relayUrl, forge.build(order))).status).toBe(204);
    await barrier(ws);
    expect(ws.updates(order.combine_out_trade_no).filter((o) => o.state === 'SUCCESS')).toHaveLength(1);
    ws.close();
  });

  it.each([
    ['forged (unknown key, right serial)', { key: NotificationForge.strangerKey() }, 401],
    ['tampered body', { tamper: true }, 401],
    ['stale timestamp', { skewMs: -310_000 }, 401],
    ['future timestamp', { skewMs: 310_000 }, 401],
    ['signature probe', { probe: true }, 401],
    ['unknown serial', { serial: 'PUB_KEY_ID_0000000000000000' }, 401],
  ])('refuses a %s notification and changes nothing', async (_name, opts, status) => {
    const order = await createOrder(env);
    const r = await post(env.relayUrl, forge.build(order, opts));
    expect(r.status).toBe(status);
    expect(r.body.code).toBe('FAIL');
    expect(typeof r.body.message).toBe('string');
    expect(await stateOf(order.combine_out_trade_no)).toBe('NOTPAY');
  });

  it('refuses wrong amounts and wrong mchids, stores an alert and pushes it to managers', async () => {
    const mws = await EventsClient.connect(env, env.manager);
    const order = await createOrder(env, [2800, 1500]);
    const r = await post(env.relayUrl, forge.build(order, { amounts: [2800, 1] }));
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'FAIL' });
    expect(await stateOf(order.combine_out_trade_no)).toBe('NOTPAY');
    const pushed = await mws.next((m) => m.type === 'alert' && m.alert.combine_out_trade_no === order.combine_out_trade_no);
    expect(pushed.type === 'alert' && pushed.alert.kind).toBe('AMOUNT_MISMATCH');
    const r2 = await post(env.relayUrl, forge.build(order, { mchids: [order.sub_orders[1]!.mchid, order.sub_orders[0]!.mchid] }));
    expect(r2.status).toBe(400);
    expect(await stateOf(order.combine_out_trade_no)).toBe('NOTPAY');
    const alerts = await api(env.relayUrl, 'GET', '/v1/alerts', env.manager);
    expect(alerts.status).toBe(200);
    const mine = alerts.body.alerts.filter((a: any) => a.combine_out_trade_no === order.combine_out_trade_no);
    expect(mine.map((a: any) => a.kind).sort()).toEqual(['AMOUNT_MISMATCH', 'MCHID_MISMATCH']);
    expect((await api(env.relayUrl, 'GET', '/v1/alerts', env.cashier)).status).toBe(403);
    // The genuine notification still applies afterwards.
    expect((await post(env.relayUrl, forge.build(order))).status).toBe(204);
    expect(await stateOf(order.combine_out_trade_no)).toBe('SUCCESS');
    mws.close();
  });

  it('refuses a notification whose combine_appid is not ours: alert, nothing paid, the same id applies later', async () => {
    const order = await createOrder(env);
    const id = 'appid-' + order.combine_out_trade_no;
    const r = await post(env.relayUrl, forge.build(order, { id, appid: 'wx0000000000000bad' }));
    expect(r.status).toBe(400);
    expect(r.body.message).toContain('APPID_MISMATCH');
    expect(await stateOf(order.combine_out_trade_no)).toBe('NOTPAY');
    const alerts = await api(env.relayUrl, 'GET', '/v1/alerts', env.manager);
    expect(alerts.body.alerts.filter((a: any) => a.combine_out_trade_no === order.combine_out_trade_no).map((a: any) => a.kind)).toEqual(['APPID_MISMATCH']);
    // The refused id was not recorded (rolled back): a genuine delivery with it still applies.
    expect((await post(env.relayUrl, forge.build(order, { id }))).status).toBe(204);
    expect(await stateOf(order.combine_out_trade_no)).toBe('SUCCESS');
  });

  it('refuses oversized bodies and unknown orders', async () => {
    const r = await fetch(env.relayUrl + '/wechatpay/notify', { method: 'POST', body: 'x'.repeat(70_000), headers: { 'Content-Type': 'application/json' } });
    expect(r.status).toBe(413);
    expect((await r.json()).code).toBe('FAIL');
    const order = await createOrder(env);
    const ghost = { ...order, combine_out_trade_no: 'C0000000000000000' };
    expect((await post(env.relayUrl, forge.build(ghost))).status).toBe(404);
  });

  it('logs are JSON and never contain tokens, keys or decrypted payloads', async () => {
    const order = await createOrder(env, [1234, 4321]);
    expect((await post(env.relayUrl, forge.build(order))).status).toBe(204);
    // The state-change line is written before the 204; wait for it rather than a fixed time.
    await until(async () => logLines.some((l) => l.includes(order.combine_out_trade_no) && l.includes('order state changed')), 5000, 20);
    expect(logLines.length).toBeGreaterThan(5);
    for (const l of logLines) expect(() => JSON.parse(l)).not.toThrow();
    const all = logLines.join('\n');
    expect(all).toContain(order.combine_out_trade_no);
    const merchant = JSON.parse(readFileSync(join(env.dir, 'merchant', 'merchant.json'), 'utf8'));
    for (const secret of [env.cashier, env.manager, merchant.apiv3_key, 'BEGIN PRIVATE KEY', 'oTest', 'transaction_id', 'ciphertext']) {
      expect(all).not.toContain(secret);
    }
  });
});
