/**
 * One rule, one place (issue 13.13): the relay, the terminal's pre-check and the APIv3 client
 * agree at every boundary of a sale — the per-sub-order cap, the description and attach limits in
 * UTF-8 bytes, the expiry limit, the merchant count and the order-number pattern.
 */
import { describe, expect, it } from 'vitest';
import { validateCreateOrder } from '../shared/relay/validate';
import { newCombineOutTradeNo, subOutTradeNo } from '../shared/relay/ids';
import { validateArgs } from '../shared/terminal/api-schema';
import { buildCombineNativeBody, MAX_SUB_ORDER_FEN } from '../shared/wechatpay/combine';
import { ATTACH_MAX_BYTES, DESCRIPTION_MAX_BYTES, ORDER_NO } from '../shared/wechatpay/validate';
import { MAX_EXPIRE_MINUTES, MAX_SUB_ORDERS } from '../shared/contracts/relay-api';
import { formatBeijing } from '../shared/wechatpay/time';

const A = '1900000101';
const B = '1900000102';
const MCHIDS = new Set([A, B]);
const sub = (over: Record<string, unknown> = {}) => ({ mchid: A, description: '牛肉面', amount: 100, ...over });
const relayAccepts = (body: unknown) => {
  try {
    validateCreateOrder(body, MCHIDS, 30);
    return true;
  } catch {
    return false;
  }
};
const terminalAccepts = (body: unknown) => {
  try {
    validateArgs('createOrder', [body, 'key-00000001']);
    return true;
  } catch {
    return false;
  }
};
const clientAccepts = (description: string, amount: number, attach?: string) => {
  try {
    buildCombineNativeBody({
      combine_appid: 'wx0000000000000001', combine_mchid: A, combine_out_trade_no: 'C0000000001',
      sub_orders: [
        { mchid: A, attach: attach ?? 'x', amount: { total_amount: amount, currency: 'CNY' }, out_trade_no: 'S000000000101', description },
        { mchid: B, attach: 'x', amount: { total_amount: 100, currency: 'CNY' }, out_trade_no: 'S000000000102', description: 'b' },
      ],
      time_expire: formatBeijing(Date.now() + 3600_000),
      notify_url: 'https://pos.example.com/wechatpay/notify',
      scene_info: { device_id: 'POS1:1', payer_client_ip: '127.0.0.1' },
    });
    return true;
  } catch {
    return false;
  }
};

describe('one rule per limit', () => {
  it('per-sub-order cap: the relay refuses exactly what the client refuses', () => {
    expect(relayAccepts({ sub_orders: [sub({ amount: MAX_SUB_ORDER_FEN })] })).toBe(true);
    expect(clientAccepts('x', MAX_SUB_ORDER_FEN)).toBe(true);
    expect(relayAccepts({ sub_orders: [sub({ amount: MAX_SUB_ORDER_FEN + 1 })] })).toBe(false);
    expect(clientAccepts('x', MAX_SUB_ORDER_FEN + 1)).toBe(false);
  });

  it('description and attach counted in UTF-8 bytes by relay and client alike', () => {
    const fits = '面'.repeat(42) + 'a'; // 127 bytes, 43 UTF-16 units
    const over = '面'.repeat(43); // 129 bytes
    expect(Buffer.byteLength(fits)).toBe(DESCRIPTION_MAX_BYTES);
    expect(relayAccepts({ sub_orders: [sub({ description: fits })] })).toBe(true);
    expect(clientAccepts(fits, 100)).toBe(true);
    expect(relayAccepts({ sub_orders: [sub({ description: over })] })).toBe(false);
    expect(clientAccepts(over, 100)).toBe(false);
    const attach = 'a'.repeat(ATTACH_MAX_BYTES);
    expect(relayAccepts({ sub_orders: [sub({ attach })] })).toBe(true);
    expect(clientAccepts('x', 100, attach)).toBe(true);
    expect(relayAccepts({ sub_orders: [sub({ attach: attach + 'a' })] })).toBe(false);
    expect(clientAccepts('x', 100, attach + 'a')).toBe(false);
  });

  it('the terminal checks shape only and leaves limits to the relay (no second copy to disagree)', () => {
    expect(terminalAccepts({ sub_orders: [sub({ description: '面'.repeat(43), amount: MAX_SUB_ORDER_FEN + 1 })] })).toBe(true);
    expect(terminalAccepts({ sub_orders: [sub({ amount: 1.5 })] })).toBe(false);
  });

  it('expiry: relay and terminal share one limit', () => {
    for (const [m, ok] of [[MAX_EXPIRE_MINUTES, true], [MAX_EXPIRE_MINUTES + 1, false]] as const) {
      const body = { sub_orders: [sub()], expire_minutes: m };
      expect(relayAccepts(body)).toBe(ok);
      expect(terminalAccepts(body)).toBe(ok);
    }
  });

  it('merchant count: 1–10 everywhere', () => {
    const subs = (n: number) => Array.from({ length: n }, () => sub());
    expect(terminalAccepts({ sub_orders: subs(MAX_SUB_ORDERS) })).toBe(true);
    expect(terminalAccepts({ sub_orders: subs(MAX_SUB_ORDERS + 1) })).toBe(false);
    expect(relayAccepts({ sub_orders: subs(MAX_SUB_ORDERS + 1) })).toBe(false);
  });

  it('order numbers the relay makes pass the one order-number pattern', () => {
    for (let i = 0; i < 200; i++) {
      const no = newCombineOutTradeNo();
      expect(no).toMatch(ORDER_NO);
      expect(subOutTradeNo(no, 9)).toMatch(ORDER_NO);
    }
  });
});
