/**
 * The customer feed's rules on plain orders (the module is pure: orders in, views out): the QR
 * withdrawn at expiry, closed and failed endings, an ended order presented again shows idle, an
 * older version never overwrites a newer one, and the thank-you ends in idle.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Order } from '../../shared/contracts/relay-api';
import type { CustomerView } from '../../shared/contracts/terminal-api';
import { CustomerFeed } from '../../shared/terminal/customer-feed';

const settings = { store_name: '老王面馆', store_logo: '', language: 'zh-CN' as const };
let feed: CustomerFeed;
afterEach(() => feed?.close());

const order = (over: Partial<Order> = {}): Order => ({
  combine_out_trade_no: 'C1', state: 'NOTPAY', total_amount: 2500, description: null, code_url: 'weixin://wxpay/bizpayurl?pr=abc',
  created_at: new Date().toISOString(), expires_at: new Date(Date.now() + 600_000).toISOString(), paid_at: null, closed_at: null,
  terminal: 'cashier-1', sub_orders: [], version: 1, ...over,
} as Order);

function collect(f: CustomerFeed): CustomerView[] {
  const views: CustomerView[] = [];
  f.onView((v) => views.push(v));
  return views;
}

const next = (views: CustomerView[], n: number) => new Promise<void>((ok, fail) => {
  const end = Date.now() + 5_000;
  const check = () => (views.length >= n ? ok() : Date.now() > end ? fail(new Error(`only ${views.length} views`)) : setTimeout(check, 10));
  check();
});

describe('customer feed', () => {
  it('withdraws the QR when it expires, shows why, then idle', async () => {
    feed = new CustomerFeed({ settings: () => settings, thanksMs: 50 });
    const views = collect(feed);
    feed.present(order({ expires_at: new Date(Date.now() + 80).toISOString() }));
    expect(views.map((v) => v.phase)).toEqual(['waiting']);
    await next(views, 3);
    expect(views.map((v) => [v.phase, v.reason])).toEqual([['waiting', undefined], ['failed', 'expired'], ['idle', undefined]]);
  });

  it('closed and PAYERROR end as failed with their reason; an ended order presented again is idle', () => {
    feed = new CustomerFeed({ settings: () => settings, thanksMs: 60_000 });
    feed.present(order());
    feed.update(order({ state: 'CLOSED', version: 2 }));
    expect(feed.view()).toMatchObject({ phase: 'failed', reason: 'closed', amount: 2500 });
    feed.present(order({ state: 'CLOSED', version: 2 }));
    expect(feed.view()).toEqual({ phase: 'idle', ...settings });
    feed.present(order({ combine_out_trade_no: 'C2' }));
    feed.update(order({ combine_out_trade_no: 'C2', state: 'PAYERROR', version: 2 }));
    expect(feed.view()).toMatchObject({ phase: 'failed', reason: 'failed' });
    // A paid order opened from history never shows "paid" to the next customer.
    feed.present(order({ combine_out_trade_no: 'C3', state: 'SUCCESS' }));
    expect(feed.view().phase).toBe('idle');
  });

  it('ignores other orders and older versions; back at the keypad withdraws the QR but lets a thank-you finish', () => {
    feed = new CustomerFeed({ settings: () => settings, thanksMs: 60_000 });
    const views = collect(feed);
    feed.present(order({ version: 3 }));
    feed.update(order({ combine_out_trade_no: 'OTHER', state: 'SUCCESS', version: 9 }));
    feed.update(order({ state: 'SUCCESS', version: 2 })); // stale
    expect(feed.view().phase).toBe('waiting');
    expect(views).toHaveLength(1);
    feed.present(null);
    expect(feed.view().phase).toBe('idle');
    feed.present(order({ combine_out_trade_no: 'C4', version: 1 }));
    feed.update(order({ combine_out_trade_no: 'C4', state: 'SUCCESS', version: 2 }));
    feed.present(null);
    expect(feed.view()).toMatchObject({ phase: 'paid', amount: 2500 });
  });

  it('an order without a QR yet (create pending) is not shown as waiting', () => {
    feed = new CustomerFeed({ settings: () => settings });
    feed.present(order({ code_url: null, creation: 'PENDING' }));
    expect(feed.view().phase).toBe('idle');
  });
});
