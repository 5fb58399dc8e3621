/**
 * The customer display's feed against the real stack (sandbox + relay + terminal services + web
 * host): it follows the order the cashier presents through that order's pushed updates (waiting →
 * paid → idle), ignores every other order, and carries nothing but what a customer may see — in the
 * services and over the web host's customer stream, whose own single-use link reaches nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order } from '../../shared/contracts/relay-api';
import type { CustomerView, TerminalEvent } from '../../shared/contracts/terminal-api';
import { startStack, type Stack } from '../helpers/stack';
import { until } from './fixtures';

let stack: Stack;
const views: CustomerView[] = [];
const events: TerminalEvent[] = [];
// A tiny PNG as the store logo (data: URL).
const LOGO = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
const ALLOWED_KEYS = ['phase', 'store_name', 'store_logo', 'language', 'amount', 'code_url', 'expires_at', 'reason'];

beforeAll(async () => {
  stack = await startStack({ services: { customerThanksMs: 400 } });
  stack.services.onCustomerView((v) => views.push(v));
  stack.services.onEvent((e) => events.push(e));
}, 60_000);
afterAll(async () => {
  await stack?.close();
});


/** Reads SSE `data:` frames of a fetch response into `into` until aborted. */
function readSse(res: Response, into: CustomerView[]): void {
  void (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (data) into.push(JSON.parse(data) as CustomerView);
        }
      }
    } catch {
      // aborted
    }
  })();
}

const sale = async (key: string, amounts: [number, number]): Promise<Order> => {
  const m = await stack.services.listMerchants();
  return stack.services.createOrder({ sub_orders: [{ mchid: m[0]!.mchid, description: '牛肉面', amount: amounts[0] }, { mchid: m[1]!.mchid, description: '奶茶', amount: amounts[1] }] }, key);
};

const pay = (codeUrl: string) => fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url: codeUrl }) });

describe('customer display feed', () => {
  let cookie = '';
  const streamed: CustomerView[] = [];
  const stop = new AbortController();
  afterAll(() => stop.abort());

  it('its own single-use link gives a session that reads the customer stream and nothing else', async () => {
    const web = stack.webOrigin;
    const launch = await fetch(`${stack.webOrigin}/`, { redirect: 'manual' });
    expect(launch.status).toBe(200); // no code: just the app page, no cookie
    expect(launch.headers.get('set-cookie')).toBeNull();
    const customerLink = stack.customerUrl;
    const ex = await fetch(customerLink, { redirect: 'manual' });
    expect(ex.status).toBe(303);
    expect(ex.headers.get('location')).toBe('/customer');
    const set = ex.headers.get('set-cookie')!;
    expect(set).toMatch(/Path=\/api\/customer;/);
    expect(set).toMatch(/HttpOnly/);
    cookie = set.split(';')[0]!;
    // Single use.
    expect((await fetch(customerLink, { redirect: 'manual' })).status).toBe(403);
    // The customer session reaches none of the cashier's API.
    for (const path of ['/api/session', '/api/getSettings', '/api/listOrders', '/api/printJobs']) {
      const r = await fetch(`${web}${path}`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{"args":[]}' });
      expect(r.status, path).toBe(401);
    }
    expect((await fetch(`${web}/api/events`, { headers: { cookie } })).status).toBe(401);
    // Without any session the customer stream is refused too.
    expect((await fetch(`${web}/api/customer/events`)).status).toBe(401);
    // The page itself is the customer bundle, with the CSP.
    const page = await fetch(`${web}/customer`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const res = await fetch(`${web}/api/customer/events`, { headers: { cookie }, signal: stop.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    readSse(res, streamed);
    await until('the first view on the stream', () => streamed.length > 0);
    expect(streamed[0]).toEqual({ phase: 'idle', store_name: '', store_logo: '', language: 'zh-CN' });
  });

  it('shows the store name and logo when idle, at once after a save', async () => {
    const r = await stack.services.saveSettings({ store_name: '老王面馆', store_logo: LOGO, cashier_name: '小李' });
    expect(r.ok).toBe(true);
    const idle = await until('idle with the store', () => streamed.find((v) => v.store_name === '老王面馆'));
    expect(idle).toEqual({ phase: 'idle', store_name: '老王面馆', store_logo: LOGO, language: 'zh-CN' });
    expect(stack.services.customerView()).toEqual(idle);
  });

  it('follows the presented order only: waiting → (another order paid: nothing) → paid → idle, with nothing but the customer view', async () => {
    const a = await sale('customer-feed-a1', [1800, 700]);
    const b = await sale('customer-feed-b1', [900, 100]);
    const before = views.length;
    const shown = await stack.services.presentOrder(a.combine_out_trade_no);
    expect(shown).toEqual({ phase: 'waiting', store_name: '老王面馆', store_logo: LOGO, language: 'zh-CN', amount: 2500, code_url: a.code_url, expires_at: a.expires_at });
    await until('waiting on the stream', () => streamed.find((v) => v.phase === 'waiting' && v.code_url === a.code_url));

    // Another order of this till is paid: its SUCCESS arrives, the display does not move.
    expect((await pay(b.code_url!)).status).toBe(200);
    await until('B paid pushed', () => events.some((e) => e.type === 'order.updated' && e.order.combine_out_trade_no === b.combine_out_trade_no && e.order.state === 'SUCCESS'));
    expect(stack.services.customerView()).toMatchObject({ phase: 'waiting', code_url: a.code_url });
    expect(views.slice(before).every((v) => v.code_url === undefined || v.code_url === a.code_url)).toBe(true);

    // The presented order is paid: its pushed update turns the display to the thank-you, then idle.
    expect((await pay(a.code_url!)).status).toBe(200);
    const paid = await until('paid', () => streamed.find((v) => v.phase === 'paid'));
    expect(paid).toEqual({ phase: 'paid', store_name: '老王面馆', store_logo: LOGO, language: 'zh-CN', amount: 2500 });
    const paidAt = streamed.indexOf(paid);
    await until('idle after the thank-you', () => streamed.slice(paidAt).find((v) => v.phase === 'idle'));
    expect(streamed.slice(paidAt).map((v) => v.phase)).toEqual(['paid', 'idle']);

    // Everything that ever reached the display: only its keys, never a token, setting or order number.
    const all = JSON.stringify([...views, ...streamed]);
    for (const secret of [stack.cashierToken, stack.managerToken, stack.relayUrl, stack.sandboxUrl, a.combine_out_trade_no, b.combine_out_trade_no, b.code_url!, 'cashier-1', '小李', 'mchid', 'terminal', 'sub_orders', 'transaction_id']) {
      expect(all, secret).not.toContain(secret);
    }
    for (const v of [...views, ...streamed]) for (const k of Object.keys(v)) expect(ALLOWED_KEYS).toContain(k);
  });

  it('re-presenting a paid order, or none, shows idle; a closed order ends as "closed"; English follows the setting', async () => {
    const views0 = views.length;
    const paidOrder = Object.values(events).map((e) => (e.type === 'order.updated' && e.order.state === 'SUCCESS' ? e.order : null)).find(Boolean)!;
    expect(await stack.services.presentOrder(paidOrder.combine_out_trade_no)).toMatchObject({ phase: 'idle' });
    expect(await stack.services.presentOrder(null)).toMatchObject({ phase: 'idle' });
    await stack.services.saveSettings({ language: 'en' });
    expect(stack.services.customerView()).toMatchObject({ phase: 'idle', language: 'en' });
    const c = await sale('customer-feed-c1', [500, 500]);
    expect(await stack.services.presentOrder(c.combine_out_trade_no)).toMatchObject({ phase: 'waiting', amount: 1000, language: 'en' });
    await expect(stack.services.presentOrder('NO_SUCH_ORDER_1')).rejects.toMatchObject({ code: expect.any(String) });
    expect(stack.services.customerView()).toMatchObject({ phase: 'waiting', amount: 1000 });
    expect(views.length).toBeGreaterThan(views0);
  });
});

