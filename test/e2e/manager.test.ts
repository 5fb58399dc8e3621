/**
 * Manager and settings screens end to end on the full local stack: closing a stale unpaid order
 * (through the CLOSE_TOO_EARLY wait), bill reconciliation with one injected mismatch, alerts,
 * the takings chart, and settings validation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack';
import { closeBrowser, openApp, shot, type Session } from './browser';
import { adjustBill, clearSandboxFaults, relayOrder, sandboxFaults, sandboxPay, shiftClock } from './sandbox-client';
import type { Order } from '../../shared/contracts/relay-api';
import { formatFen } from '../../renderer/src/money';

// Closing is refused for the first few seconds after creation (the real rule is 5 minutes).
const CLOSE_MIN_AGE = 8;

let stack: Stack;
let app: Session;

beforeAll(async () => {
  stack = await startStack({ closeMinAgeSeconds: CLOSE_MIN_AGE });
  app = await openApp(stack.webUrl);
});

afterAll(async () => {
  await app?.close();
  await closeBrowser();
  await stack?.close();
});

async function waitState(no: string, state: Order['state']): Promise<Order> {
  for (let i = 0; i < 100; i++) {
    const o = await relayOrder(stack.relayUrl, stack.managerToken, no);
    if (o.state === state) return o;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`order ${no} never became ${state}`);
}

const beijingToday = () => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);

describe('manager screen', () => {
  it('closes a stale unpaid order, showing the CLOSE_TOO_EARLY countdown first', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    const order = await stack.services.createOrder({
      sub_orders: [
        { mchid: merchants[0]!.mchid, description: '红烧牛肉面', amount: 2800 },
        { mchid: merchants[1]!.mchid, description: '珍珠奶茶', amount: 1500 },
      ],
    }, `e2e-stale-${Date.now()}`);

    await page.locator('[data-testid=tab-manager]').click();
    await page.locator('[data-testid=stale-minutes]').fill('0');
    await page.locator('[data-testid=stale-refresh]').click();
    const row = page.locator(`[data-testid=stale-row][data-order="${order.combine_out_trade_no}"]`);
    await row.waitFor();
    const button = row.locator('[data-testid=close-order]');
    // Before the 5-minute rule allows it: the button counts down in m:ss and looks disabled.
    expect(await button.textContent()).toMatch(/^[45]:\d{2} 后可关闭$/);
    expect(await button.getAttribute('class')).toContain('looks-disabled');
    await shot(page, 'manager-stale-countdown-local');
    // Closing asks first; Esc cancels and nothing is sent.
    await button.click();
    const dialog = page.locator('[data-testid=confirm-close]');
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain(order.combine_out_trade_no);
    await shot(page, 'manager-close-confirm');
    await page.keyboard.press('Escape');
    expect(await dialog.count()).toBe(0);
    expect((await relayOrder(stack.relayUrl, stack.managerToken, order.combine_out_trade_no)).state).toBe('NOTPAY');
    // Confirmed: the relay (here with an 8 s rule) answers CLOSE_TOO_EARLY; its wait is the one shown.
    await button.click();
    await page.locator('[data-testid=confirm-close-yes]').click();
    await page.waitForFunction(
      (sel) => /^0:0\d 后可关闭$/.test(document.querySelector(sel)?.textContent ?? ''),
      `[data-order="${order.combine_out_trade_no}"] [data-testid=close-order]`,
    );
    expect(await button.isDisabled()).toBe(true);
    await shot(page, 'manager-stale-countdown');
    await page.waitForFunction(
      (sel) => !(document.querySelector(sel) as HTMLButtonElement | null)?.disabled,
      `[data-order="${order.combine_out_trade_no}"] [data-testid=close-order]`,
      { timeout: (CLOSE_MIN_AGE + 5) * 1000 },
    );
    await button.click();
    await page.keyboard.press('Enter');
    await page.locator(`[data-testid=stale-row][data-order="${order.combine_out_trade_no}"][data-state=CLOSED]`).waitFor();
    expect((await relayOrder(stack.relayUrl, stack.managerToken, order.combine_out_trade_no)).state).toBe('CLOSED');
    await shot(page, 'manager-stale-closed');
  });

  it('a sale whose create failed at WeChat Pay shows as failed (创建失败), never as waiting', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    await sandboxFaults(stack.sandboxUrl, { path: '/v3/combine-transactions', kind: 'SYSTEM_ERROR', count: 50 });
    const before = new Set((await stack.services.listOrders({ limit: 200 })).map((o) => o.combine_out_trade_no));
    await expect(stack.services.createOrder({
      sub_orders: [
        { mchid: merchants[0]!.mchid, description: '面', amount: 1100 },
        { mchid: merchants[1]!.mchid, description: '茶', amount: 900 },
      ],
    }, `e2e-failed-${Date.now()}`)).rejects.toBeTruthy();
    await clearSandboxFaults(stack.sandboxUrl);
    const failed = (await stack.services.listOrders({ limit: 200 })).find((o) => !before.has(o.combine_out_trade_no))!;
    expect(failed.creation).toBe('FAILED');

    // 超时未付 does not list it: nobody can pay an order without a QR.
    await page.locator('[data-testid=mtab-stale]').click();
    await page.locator('[data-testid=stale-minutes]').fill('0');
    const waiting = await stack.services.createOrder({
      sub_orders: [
        { mchid: merchants[0]!.mchid, description: '面', amount: 1200 },
        { mchid: merchants[1]!.mchid, description: '茶', amount: 800 },
      ],
    }, `e2e-waiting-${Date.now()}`);
    await page.locator('[data-testid=stale-refresh]').click();
    await page.locator(`[data-testid=stale-row][data-order="${waiting.combine_out_trade_no}"]`).waitFor();
    expect(await page.locator(`[data-testid=stale-row][data-order="${failed.combine_out_trade_no}"]`).count()).toBe(0);

    // 订单查询 shows it failed, with WeChat Pay's error.
    await page.locator('[data-testid=mtab-search]').click();
    await page.locator('[data-testid=search-q]').fill(failed.combine_out_trade_no);
    await page.locator('[data-testid=search-state]').selectOption('');
    await page.locator('[data-testid=search-go]').click();
    const row = page.locator(`[data-testid=search-row][data-order="${failed.combine_out_trade_no}"]`);
    await row.waitFor();
    expect(await row.getAttribute('data-status')).toBe('CREATE_FAILED');
    expect(await row.locator('[data-testid=row-status]').textContent()).toBe('创建失败');
    expect(await row.textContent()).not.toContain('等待顾客扫码');
    expect((await row.locator('[data-testid=row-error]').textContent())!.length).toBeGreaterThan(0);
    // Dates read YYYY-MM-DD.
    expect(await row.textContent()).toContain(beijingToday());
    await shot(page, 'manager-search-create-failed');
  });

  it('tags one-merchant sales in the order lists (when the relay makes them)', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    let single: Order | null = null;
    try {
      single = await stack.services.createOrder({ sub_orders: [{ mchid: merchants[2]!.mchid, description: '叉烧饭', amount: 2600 }] }, `e2e-single-${Date.now()}`);
    } catch (err) {
      // The relay does not take one-merchant sales yet (issue 11 in progress): nothing to tag.
      expect((err as { field?: string }).field).toBe('sub_orders');
      return;
    }
    await page.locator('[data-testid=mtab-search]').click();
    await page.locator('[data-testid=search-q]').fill(single.combine_out_trade_no);
    await page.locator('[data-testid=search-go]').click();
    const row = page.locator(`[data-testid=search-row][data-order="${single.combine_out_trade_no}"]`);
    await row.waitFor();
    expect(await row.getAttribute('data-kind')).toBe('single');
    expect(await row.locator('[data-testid=kind-tag]').textContent()).toBe('单商户');
    await shot(page, 'manager-search-single-tag');
  });

  it('finds orders by number, date and state', async () => {
    const { page } = app;
    await page.locator('[data-testid=mtab-search]').click();
    const all = await stack.services.listOrders({ state: 'CLOSED' });
    const target = all[0]!.combine_out_trade_no;
    // The relay matches the beginning of an order, sub-order or transaction number.
    await page.locator('[data-testid=search-q]').fill(target);
    // The day reads YYYY-MM-DD whatever the browser's locale (the native input would say 11/29/2026).
    expect(await page.locator('[data-testid=search-date]').inputValue()).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    await page.locator('[data-testid=search-date]').fill(beijingToday());
    await page.locator('[data-testid=search-state]').selectOption('CLOSED');
    await page.locator('[data-testid=search-go]').click();
    const rows = page.locator('[data-testid=search-row]');
    // The previous search's rows stay until this one's answer replaces them: wait for the target.
    await page.locator(`[data-testid=search-row][data-order="${target}"]`).waitFor();
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-order')).toBe(target);
    await page.locator('[data-testid=search-state]').selectOption('SUCCESS');
    await page.locator('[data-testid=search-go]').click();
    await page.locator('[data-testid=search] .hint').waitFor();
    await shot(page, 'manager-search');
  });

  it('reconciles the day’s bills with progress and lists the one injected mismatch', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    const paidOrders: Order[] = [];
    for (const [a, b] of [[2800, 1500], [2200, 900]] as const) {
      const o = await stack.services.createOrder({
        sub_orders: [
          { mchid: merchants[0]!.mchid, description: '面', amount: a },
          { mchid: merchants[1]!.mchid, description: '茶', amount: b },
        ],
      }, `e2e-bill-${a}-${Date.now()}`);
      await sandboxPay(stack.sandboxUrl, o.code_url!);
      paidOrders.push(await waitState(o.combine_out_trade_no, 'SUCCESS'));
    }
    const billDate = beijingToday();
    const victim = paidOrders[1]!.sub_orders[0]!;
    await adjustBill(stack.sandboxUrl, { out_trade_no: victim.out_trade_no, amount: victim.amount - 100 });
    // Bills are ready the next day from 10:00 Beijing: move the simulator's business clock on.
    await shiftClock(stack.sandboxUrl, 2 * 86400);

    await page.locator('[data-testid=mtab-bills]').click();
    // The picker offers no future day; one typed anyway is refused once, in words.
    expect(await page.locator('[data-testid=bill-date-picker]').getAttribute('max')).toBe(beijingToday());
    await page.locator('[data-testid=bill-date]').fill('2099-01-01');
    await page.locator('[data-testid=reconcile]').click();
    const refusal = page.locator('[data-testid=bills] [role=alert]');
    await refusal.waitFor();
    expect(await refusal.textContent()).toBe('账单日期不能晚于今天（北京时间）。');
    await shot(page, 'manager-bills-future-date');
    await page.locator('[data-testid=bill-date]').fill(billDate);
    await page.locator('[data-testid=reconcile]').click();
    const report = page.locator('[data-testid=bill-report]');
    await report.waitFor({ timeout: 30_000 });
    expect(await report.getAttribute('data-ok')).toBe('false');
    const progress = page.locator('[data-testid=bill-progress]');
    expect(Number(await progress.getAttribute('data-total'))).toBeGreaterThan(0);
    expect(await progress.getAttribute('data-done')).toBe(await progress.getAttribute('data-total'));
    const rows = page.locator('[data-testid=mismatch]');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-kind')).toBe('AMOUNT_MISMATCH');
    expect(await rows.first().getAttribute('data-out-trade-no')).toBe(victim.out_trade_no);
    const text = await rows.first().textContent();
    expect(text).toContain('金额不一致');
    expect(text).toContain(formatFen(victim.amount));
    await shot(page, 'manager-bills-mismatch');

    await page.locator('[data-testid=mtab-alerts]').click();
    await page.locator('[data-testid=alerts]').waitFor();
    await shot(page, 'manager-alerts');
    await shiftClock(stack.sandboxUrl, 0);
  });

  it('charts the day’s takings per sub-merchant', async () => {
    const { page } = app;
    await page.locator('[data-testid=mtab-takings]').click();
    const bars = page.locator('[data-testid=takings-bar]');
    await bars.first().waitFor();
    const merchants = await stack.services.listMerchants();
    const expected = await stack.services.takings(beijingToday());
    const first = expected.merchants.find((m) => m.mchid === merchants[0]!.mchid)!;
    expect(first.amount).toBe(2800 + 2200);
    const bar = page.locator(`[data-testid=takings-bar][data-mchid="${first.mchid}"]`);
    expect(await bar.getAttribute('data-amount')).toBe(String(first.amount));
    expect(await bar.textContent()).toContain('¥50.00');
    await shot(page, 'manager-takings');
  });
});

describe('preview printer', () => {
  it('shows the order slip on screen when no printer is attached', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-cashier]').click();
    for (const i of [0, 1]) {
      await page.locator('.merchant-tab').nth(i).click();
      await page.locator('.catalog-grid .item').first().click();
    }
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    await page.locator('.print-row[data-kind=slip][data-state=done]').waitFor();
    await page.locator('.preview summary').click();
    const preview = page.locator('[data-testid=receipt-preview]');
    await preview.waitFor();
    expect(await preview.textContent()).toContain(no);
    // The whole slip can be read: its area scrolls, and the last line is scrolled into view.
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-testid=print-status]')!;
      const pre = el.querySelector('pre')!;
      return getComputedStyle(el).overflowY === 'auto' && pre.getBoundingClientRect().bottom <= el.getBoundingClientRect().bottom + 1
        && pre.scrollWidth <= pre.clientWidth + 1;
    }, undefined, { timeout: 5000 });
    await shot(page, 'cashier-slip-preview');
    await page.keyboard.press('Escape');
  });
});

describe('settings screen', () => {
  it('never shows the tokens: set / not set, with replace and clear', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('[data-testid=token-terminal_token]').waitFor();
    expect(await page.locator('[data-testid=token-terminal_token]').getAttribute('data-set')).toBe('true');
    expect(await page.locator('[data-testid=token-state-terminal_token]').textContent()).toBe('已设置');
    expect(await page.locator('[data-testid=token-replace-terminal_token]').textContent()).toBe('替换');
    expect(await page.locator('[data-testid=token-clear-manager_token]').textContent()).toBe('清除');
    const html = await page.content();
    expect(html).not.toContain(stack.cashierToken);
    expect(html).not.toContain(stack.managerToken);
    // Replace opens an empty field; undo leaves the token as it was.
    await page.locator('[data-testid=token-replace-terminal_token]').click();
    expect(await page.locator('[data-testid=token-input-terminal_token]').inputValue()).toBe('');
    await page.locator('[data-testid=token-keep-terminal_token]').click();
    await shot(page, 'settings-tokens');
  });

  it('shows validation messages next to the fields, in Chinese, and keeps the stored settings', async () => {
    const { page } = app;
    const before = await stack.services.getSettings();
    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('#f-relay_url').fill('not a url');
    await page.locator('#f-stale_minutes').fill('-3');
    await page.locator('[data-testid=settings-save]').click();
    await page.locator('.field.invalid[data-field=relay_url]').waitFor();
    expect(await page.locator('[data-testid=error-relay_url]').textContent()).toBe('请填写以 http:// 或 https:// 开头的地址（不带 ? 和 #）。');
    expect(await page.locator('[data-testid=error-stale_minutes]').textContent()).toBe('请填写 1 到 1440 之间的整数分钟。');
    expect(await page.locator('[data-testid=settings-status]').textContent()).toBe('请修改标红的项目');
    await shot(page, 'settings-invalid');
    expect(await stack.services.getSettings()).toEqual(before);
    // Put the form back (the next tests save it).
    await page.locator('#f-relay_url').fill(before.relay_url);
    await page.locator('#f-stale_minutes').fill(String(before.stale_minutes));
  });

  it('switches the whole screen to English', async () => {
    const { page } = app;
    await page.locator('[data-testid=lang]').click();
    await page.locator('[data-testid=tab-cashier]').click();
    expect(await page.locator('[data-testid=tab-cashier]').textContent()).toBe('Cashier');
    expect(await page.locator('[data-testid=charge]').textContent()).toBe('Charge ¥0.00');
    await shot(page, 'cashier-english');
    expect((await stack.services.getSettings()).language).toBe('en');
    // <html lang> follows, so the native date picker localises.
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('en');
    // Saving Settings afterwards (another field) keeps the language switched in the header.
    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('#f-stale_minutes').fill('12');
    await page.locator('[data-testid=settings-save]').click();
    await page.locator('[data-testid=settings-status]').filter({ hasText: 'Saved' }).waitFor();
    const after = await stack.services.getSettings();
    expect(after.language).toBe('en');
    expect(after.stale_minutes).toBe(12);
    expect(await page.locator('[data-testid=tab-cashier]').textContent()).toBe('Cashier');
  });

  it('tells the cashier when the payment server cannot be reached, and recovers', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('#f-relay_url').fill('http://127.0.0.1:9');
    await page.locator('[data-testid=settings-save]').click();
    await page.locator('[data-testid=connection][data-state=offline]').waitFor({ timeout: 20_000 });
    await page.locator('[data-testid=tab-cashier]').click();
    const banner = page.locator('[data-testid=cashier-offline]');
    await banner.waitFor();
    expect(await banner.textContent()).toMatch(/Offline/);
    await shot(page, 'cashier-offline');

    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('#f-relay_url').fill(stack.relayUrl);
    await page.locator('[data-testid=settings-save]').click();
    await page.locator('[data-testid=connection][data-state=online]').waitFor({ timeout: 20_000 });
    await page.locator('[data-testid=tab-cashier]').click();
    expect(await page.locator('[data-testid=cashier-offline]').count()).toBe(0);
  });

  it('locks the manager screen once the manager token is removed', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('[data-testid=token-clear-manager_token]').click();
    expect(await page.locator('[data-testid=token-state-manager_token]').textContent()).toBe('Cleared on save');
    await page.locator('[data-testid=settings-save]').click();
    await page.locator('[data-testid=settings-status]').filter({ hasText: 'Saved' }).waitFor();
    await page.locator('[data-testid=tab-manager]').click();
    const lock = page.locator('[data-testid=manager-locked]');
    await lock.waitFor();
    expect(await lock.textContent()).toContain('manager token');
    expect(await page.locator('[data-testid=stale]').count()).toBe(0);
    expect((await stack.services.getSettings()).manager_token_set).toBe(false);
    await page.locator('[data-testid=tab-settings]').click();
    expect(await page.locator('[data-testid=token-state-manager_token]').textContent()).toBe('Not set');
    await page.locator('[data-testid=tab-manager]').click();
    await shot(page, 'manager-locked');
  });
});
