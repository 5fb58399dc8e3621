import type { Order } from '../../shared/contracts/relay-api';

export const CODE_URL = 'weixin://wxpay/bizpayurl/up?pr=NwY5Mz9&groupid=00';

export function sampleOrder(over: Partial<Order> = {}): Order {
  return {
    combine_out_trade_no: 'POS20261127043000001',
    state: 'NOTPAY',
    total_amount: 12_345,
    description: '合单',
    code_url: CODE_URL,
    created_at: '2026-11-27T04:30:00.000Z',
    expires_at: '2026-11-27T05:00:00.000Z',
    paid_at: null,
    closed_at: null,
    terminal: 'cashier-1',
    sub_orders: [
      { mchid: '1900000101', out_trade_no: 'POS20261127043000001-1', description: '陶喆专辑 CD', amount: 9_900, transaction_id: null, state: 'NOTPAY' },
      { mchid: '1900000102', out_trade_no: 'POS20261127043000001-2', description: '矿泉水 ×3', amount: 2_445, transaction_id: null, state: 'NOTPAY' },
    ],
    ...over,
  };
}

export const paidOrder = (): Order => {
  const o = sampleOrder({ state: 'SUCCESS', paid_at: '2026-11-27T04:31:05.000Z' });
  o.sub_orders = o.sub_orders.map((s, i) => ({ ...s, state: 'SUCCESS', transaction_id: `42000012342026112700000000${i + 1}` }));
  return o;
};

export const NAMES = { '1900000101': '喆喆音像店', '1900000102': '便利店' };

/** Polls `f` (every 20 ms) until it gives a truthy value; fails naming `what` after `ms`. */
export async function until<T>(what: string, f: () => T | undefined | null | false | Promise<T | undefined | null | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
