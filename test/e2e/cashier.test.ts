/**
 * Cashier screen end to end on the full local stack (sandbox, relay, terminal services, web
 * host, a TCP capture printer), driven in Debian Chromium at 1366×768.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type Stack } from '../helpers/stack';
import { startEscPosCapture, type EscPosCapture } from '../helpers/escpos-capture';
import { closeBrowser, openApp, readScreenQr, shot, type Page, type Session } from './browser';
import { formatFen } from '../../renderer/src/money';
import { clearSandboxFaults, relayOrder, sandboxFaults, sandboxPay } from './sandbox-client';

let dir: string;
let capture: EscPosCapture;
let stack: Stack;
let app: Session;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pos-e2e-cashier-'));
  capture = await startEscPosCapture();
  stack = await startStack({ dir, printer: capture.uri, queryAfterSeconds: 1 });
  app = await openApp(stack.webUrl);
});

afterAll(async () => {
  await app?.close();
  await closeBrowser();
  await stack?.close();
  await capture?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Boxes of the given elements, to check that a state change moves nothing. */
async function layout(page: Page, selectors: string[]) {
  const out: Record<string, unknown> = {};
  for (const sel of selectors) out[sel] = await page.locator(sel).first().boundingBox();
  return out;
}

/** Adds the first catalogue item of the merchant tab at `index`; returns its price in fen. */
async function addFirstItem(index: number): Promise<void> {
  const { page } = app;
  await page.locator('.merchant-tab').nth(index).click();
  await page.locator('.catalog-grid .item').first().click();
}

describe('cashier screen', () => {
  it('refuses a single-merchant sale with a clear message and sends nothing', async () => {
    const { page } = app;
    await addFirstItem(0);
    const before = await layout(page, ['.keypad', '[data-testid=charge]', '[data-testid=total]', '.catalog-grid']);
    await page.keyboard.press('Enter');
    const msg = page.locator('[data-testid=cashier-error]');
    await msg.waitFor();
    // The message has its own reserved slot: nothing else moves.
    expect(await layout(page, ['.keypad', '[data-testid=charge]', '[data-testid=total]', '.catalog-grid'])).toEqual(before);
    expect(await msg.textContent()).toContain('合单支付需要至少两个商户');
    expect(await page.locator('[data-testid=order-view]').count()).toBe(0);
    await shot(page, 'cashier-single-merchant-refused');
    await page.locator('.btn.clear').click();
  });

  it('charges a combined order: QR decoded from the screen equals code_url, paid shown, receipt printed', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    expect(merchants.length).toBeGreaterThanOrEqual(2);
    await addFirstItem(0);
    // Second merchant by keyboard: → then a typed amount ¥12.50.
    await page.keyboard.press('ArrowRight');
    await page.keyboard.type('12.5');
    const totalText = await page.locator('[data-testid=total]').textContent();
    await shot(page, 'cashier-compose');
    await page.keyboard.press('Enter');

    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    const fromRelay = await relayOrder(stack.relayUrl, stack.cashierToken, no);
    const scanned = await readScreenQr(page);
    expect(fromRelay.code_url).toMatch(/^weixin:\/\//);
    expect(scanned).toBe(fromRelay.code_url);
    expect(await page.locator('[data-testid=order-total]').textContent()).toBe(totalText);
    expect(fromRelay.sub_orders.map((s) => s.amount)).toContain(1250);
    expect(await page.locator('[data-testid=order-status]').getAttribute('data-state')).toBe('NOTPAY');
    expect(await page.locator('[data-testid=countdown]').textContent()).toMatch(/剩余 \d+:\d{2}/);
    await shot(page, 'cashier-qr');

    // The order slip went to the printer with the same QR payload.
    const slip = await capture.waitForJob(0);
    expect(slip.decoded.qr.concat(slip.decoded.rasters.map((r) => r.qr ?? ''))).toContain(fromRelay.code_url);

    const paid = await sandboxPay(stack.sandboxUrl, scanned!);
    expect(paid.state).toBe('SUCCESS');
    const done = page.locator('[data-testid=paid][data-state=SUCCESS]');
    await done.waitFor({ timeout: 15_000 });
    expect(await done.textContent()).toContain('收款成功');
    await shot(page, 'cashier-paid');

    const receipt = await capture.waitForJob(1, 15_000);
    expect(receipt.decoded.text).toContain('支付成功');
    expect(receipt.decoded.text).toContain(no);
    expect(receipt.decoded.cut).toBe(true);
    await page.locator('.print-row[data-kind=receipt][data-state=done]').waitFor();
    await shot(page, 'cashier-paid-printed');

    await page.keyboard.press('Enter');
    await page.locator('[data-testid=cashier]').waitFor();
    expect(await page.locator('[data-testid=total]').textContent()).toBe('¥0.00');
  });

  it('shows a pending order again after the app restarts, with its state', async () => {
    const { page } = app;
    await addFirstItem(0);
    await addFirstItem(1);
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    // The customer starts paying but has not finished (no notification: the relay learns it by query).
    const code = (await relayOrder(stack.relayUrl, stack.cashierToken, no)).code_url!;
    const regions = ['[data-testid=qr]', '[data-testid=order-status]', '[data-testid=countdown]', '[data-testid=back]'];
    const before = await layout(page, regions);
    await sandboxPay(stack.sandboxUrl, code, { outcome: 'USERPAYING' });
    await page.locator('[data-testid=order-status][data-state=USERPAYING]').waitFor({ timeout: 15_000 });
    expect(await layout(page, regions)).toEqual(before);
    await page.keyboard.press('Escape');
    await page.locator(`[data-testid=open-order][data-order="${no}"]`).waitFor();

    // Restart everything on the same data folder, and a fresh browser profile.
    await app.close();
    await stack.close();
    stack = await startStack({ dir, printer: capture.uri, queryAfterSeconds: 1 });
    app = await openApp(stack.webUrl);
    const chip = app.page.locator(`[data-testid=open-order][data-order="${no}"]`);
    await chip.waitFor({ timeout: 15_000 });
    expect(await chip.getAttribute('data-state')).toBe('USERPAYING');
    await shot(app.page, 'cashier-after-restart');
    await chip.click();
    await app.page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    expect(await readScreenQr(app.page)).toBe(code);

    // "Simulate customer's scan" opens the sandbox's phone page in a new window.
    const [phone] = await Promise.all([
      app.context.waitForEvent('page'),
      app.page.locator('[data-testid=simulate]').click(),
    ]);
    await phone.waitForLoadState();
    expect(phone.url().startsWith(stack.sandboxUrl)).toBe(true);
    await phone.setViewportSize({ width: 420, height: 768 });
    await shot(phone, 'sandbox-phone-page');
    await phone.close();

    // Back at the main screen, the customer finishes paying: the till says so.
    await app.page.keyboard.press('Escape');
    await sandboxPay(stack.sandboxUrl, code, { outcome: 'SUCCESS' });
    const notice = app.page.locator('[data-testid=paid-notice]');
    await notice.waitFor({ timeout: 15_000 });
    expect(await notice.textContent()).toContain(no);
    expect(await app.page.locator(`[data-testid=open-order][data-order="${no}"]`).count()).toBe(0);
    await shot(app.page, 'cashier-paid-notice');
    expect(app.errors.filter((e) => /Content Security Policy/i.test(e))).toEqual([]);
  });

  it('explains a printer failure in plain words and prints on retry', async () => {
    const { page } = app;
    const port = capture.port;
    await capture.close();
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
    await addFirstItem(2);
    await addFirstItem(3);
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const row = page.locator('.print-row[data-kind=slip][data-state=failed]');
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain('打印机拒绝连接');
    await shot(page, 'cashier-printer-failed');

    capture = await startEscPosCapture({ port });
    await row.getByRole('button').click();
    await page.locator('.print-row[data-kind=slip][data-state=done]').waitFor({ timeout: 15_000 });
    const job = await capture.waitForJob(0);
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    expect(job.decoded.text).toContain(no);
  });

  it('tells the cashier WeChat Pay is unavailable, keeps the sale, and charges once it is back', async () => {
    const { page } = app;
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
    await addFirstItem(0);
    await addFirstItem(1);
    const total = await page.locator('[data-testid=total]').textContent();
    await sandboxFaults(stack.sandboxUrl, { path: '/v3/combine-transactions', kind: 'SYSTEM_ERROR', count: 50 });
    await page.keyboard.press('Enter');
    const msg = page.locator('[data-testid=cashier-error]');
    await msg.waitFor({ timeout: 20_000 });
    expect(await msg.textContent()).toContain('微信支付暂时不可用');
    expect(await page.locator('[data-testid=total]').textContent()).toBe(total);
    await shot(page, 'cashier-upstream-error');

    await clearSandboxFaults(stack.sandboxUrl);
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    expect(await page.locator('[data-testid=order-total]').textContent()).toBe(total);
  });

  it('charges what was just tapped even when Enter comes before the screen redraws', async () => {
    const { page } = app;
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
    await addFirstItem(0);
    await page.locator('.merchant-tab').nth(1).click();
    await page.locator('.catalog-grid .item').first().waitFor();
    const expected = await stack.services.listMerchants();
    const sum = expected[0]!.catalog![0]!.price + expected[1]!.catalog![0]!.price;
    // Tap and Enter in one task: no render can happen in between.
    await page.evaluate(`(() => {
      document.querySelector('.catalog-grid .item').click();
      window.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    })()`);
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    expect(await page.locator('[data-testid=order-total]').textContent()).toBe(formatFen(sum));
  });
});
