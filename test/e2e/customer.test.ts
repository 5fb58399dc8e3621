/**
 * Customer display end to end in Chromium on the full local stack: the cashier page and the
 * `/customer` page side by side; a sale made on the cashier screen shows on the customer page as
 * amount → QR (decoded from pixels, equal to the relay's code_url) → paid after the sandbox buyer
 * pays → idle with the store's name. Screenshots of each customer screen.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack';
import { closeBrowser, openApp, openPage, readScreenQr, shot, type Session } from './browser';
import { relayOrder, sandboxPay } from './sandbox-client';

let dir: string;
let stack: Stack;
let app: Session;
let customer: Session;
const LOGO = 'data:image/svg+xml;base64,' + Buffer.from(
  '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="120"><rect width="200" height="120" rx="20" fill="#c0392b"/><text x="100" y="78" font-size="48" text-anchor="middle" fill="#fff">老王</text></svg>',
).toString('base64');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pos-e2e-customer-'));
  // PAYERROR comes with no notification: the relay learns it by query (after 1 s here).
  stack = await startStack({ dir, queryAfterSeconds: 1, services: { customerThanksMs: 3_000 } });
  await stack.services.saveSettings({ store_name: '老王面馆', store_logo: LOGO });
  app = await openApp(stack.webUrl);
  customer = await openPage(stack.customerUrl);
}, 60_000);

afterAll(async () => {
  await customer?.close();
  await app?.close();
  await closeBrowser();
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('customer display', () => {
  it('idle shows the store name and logo', async () => {
    const { page } = customer;
    expect(new URL(page.url()).pathname).toBe('/customer');
    await page.locator('[data-testid=customer][data-phase=idle]').waitFor();
    expect(await page.locator('[data-testid=customer-store]').textContent()).toBe('老王面馆');
    expect(await page.locator('[data-testid=customer-logo]').getAttribute('src')).toBe(LOGO);
    await shot(page, 'customer-idle');
  });

  it('a sale on the cashier screen: amount → QR (as scanned from the screen) → paid → idle', async () => {
    const { page } = app;
    await page.locator('.merchant-tab').nth(0).click();
    await page.locator('.catalog-grid .item').first().click();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.type('12.5');
    const total = await page.locator('[data-testid=total]').textContent();
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    const order = await relayOrder(stack.relayUrl, stack.cashierToken, no);

    const c = customer.page;
    await c.locator('[data-testid=customer][data-phase=waiting] [data-testid=qr][data-ready="1"]').waitFor({ timeout: 15_000 });
    expect(await c.locator('[data-testid=customer-amount]').textContent()).toBe(total);
    const scanned = await readScreenQr(c);
    expect(scanned).toBe(order.code_url);
    // Nothing of the sale's internals on the customer's screen.
    const text = (await c.locator('body').textContent())!;
    expect(text).not.toContain(no);
    await shot(c, 'customer-waiting');

    await sandboxPay(stack.sandboxUrl, scanned!);
    await c.locator('[data-testid=customer][data-phase=paid]').waitFor({ timeout: 15_000 });
    expect(await c.locator('[data-testid=customer-thanks]').textContent()).toBe('支付成功，谢谢惠顾');
    expect(await c.locator('[data-testid=customer-amount]').textContent()).toBe(total);
    await shot(c, 'customer-paid');
    await c.locator('[data-testid=customer][data-phase=idle]').waitFor({ timeout: 15_000 });
    expect(customer.errors).toEqual([]);
    await page.keyboard.press('Enter'); // new sale
  });

  it('a payment that fails shows the customer to ask the cashier, then idle', async () => {
    const { page } = app;
    await page.locator('[data-testid=cashier]').waitFor();
    await page.keyboard.type('8');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.type('2');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    const order = await relayOrder(stack.relayUrl, stack.cashierToken, no);
    const c = customer.page;
    await c.locator('[data-testid=customer][data-phase=waiting] [data-testid=qr][data-ready="1"]').waitFor({ timeout: 15_000 });
    expect(await readScreenQr(c)).toBe(order.code_url);
    await sandboxPay(stack.sandboxUrl, order.code_url!, { outcome: 'PAYERROR' });
    await c.locator('[data-testid=customer][data-phase=failed]').waitFor({ timeout: 15_000 });
    expect(await c.locator('[data-testid=customer-failed]').textContent()).toBe('支付未成功，请联系收银员');
    await shot(c, 'customer-failed');
    await c.locator('[data-testid=customer][data-phase=idle]').waitFor({ timeout: 15_000 });
    await page.keyboard.press('Escape');
  });

  it('the cashier\'s own browser session opens /customer too; English follows the language setting', async () => {
    const page = await app.context.newPage();
    try {
      await stack.services.saveSettings({ language: 'en' });
      await page.goto(`${stack.webOrigin}/customer`);
      await page.locator('[data-testid=customer][data-phase=idle]').waitFor();
      expect(await page.locator('html').getAttribute('lang')).toBe('en');
      expect(await page.locator('.c-welcome').textContent()).toBe('Welcome');
      await shot(page, 'customer-idle-en');
    } finally {
      await stack.services.saveSettings({ language: 'zh-CN' });
      await page.close();
    }
  });

  it('a page without a customer session says so plainly', async () => {
    const s = await openPage(`${stack.webOrigin}/customer`);
    try {
      await s.page.locator('[data-testid=customer-expired]').waitFor();
    } finally {
      await s.close();
    }
  });
});
