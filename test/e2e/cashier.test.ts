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
import { closeBrowser, openApp, openPage, readScreenQr, shot, type Page, type Session } from './browser';
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

  it('Esc clears the amount after an error; refused keys are said; a large amount asks before 收款', async () => {
    const { page } = app;
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
    await page.locator('.btn.clear').click();
    const entry = page.locator('[data-testid=entry] .entry-value');
    await addFirstItem(0);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.type('31');
    // WeChat Pay down: the error shows, the sale is kept.
    await sandboxFaults(stack.sandboxUrl, { path: '/v3/combine-transactions', kind: 'SYSTEM_ERROR', count: 50 });
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=cashier-error]').waitFor({ timeout: 20_000 });
    await clearSandboxFaults(stack.sandboxUrl);
    expect(await entry.textContent()).toBe('31');
    // Esc hides the error AND clears the typed amount: the next digits start a new amount (no ¥310,000).
    await page.keyboard.press('Escape');
    expect(await page.locator('[data-testid=cashier-error]').count()).toBe(0);
    expect(await entry.textContent()).toBe('0');
    await page.keyboard.type('5');
    expect(await entry.textContent()).toBe('5');

    // The 7th integer digit is refused, and the screen says so instead of stopping silently.
    await page.keyboard.press('Escape');
    await page.keyboard.type('9999999');
    expect(await entry.textContent()).toBe('999999');
    const refused = page.locator('[data-testid=key-refused]');
    await refused.waitFor();
    expect(await refused.getAttribute('data-reason')).toBe('TOO_LARGE');
    expect(await refused.textContent()).toContain('¥999,999.99');
    await shot(page, 'cashier-key-refused');

    // Above ¥5,000: a confirmation first; Esc goes back to the sale without creating anything.
    const before = (await stack.services.listOrders({ limit: 100 })).length;
    await page.keyboard.press('Enter');
    const dialog = page.locator('[data-testid=confirm-amount]');
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('¥5,000.00');
    await shot(page, 'cashier-confirm-large');
    await page.keyboard.press('Escape');
    expect(await dialog.count()).toBe(0);
    expect(await entry.textContent()).toBe('999999');
    expect((await stack.services.listOrders({ limit: 100 })).length).toBe(before);
    // A sensible amount: no question asked.
    await page.keyboard.press('Escape');
    await page.keyboard.type('60');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    expect(await dialog.count()).toBe(0);
    // The typed amount is labelled once: the merchant's name, not "name · name".
    const merchants = await stack.services.listMerchants();
    const typedLine = page.locator('.subs li').nth(1);
    expect(await typedLine.locator('.sub-desc').textContent()).toBe(merchants[1]!.name);
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
  });

  it('a one-merchant sale is not refused by the till', async () => {
    const { page } = app;
    await addFirstItem(2);
    await page.keyboard.press('Enter');
    const view = page.locator('[data-testid=qr][data-ready="1"]');
    const err = page.locator('[data-testid=cashier-error]');
    await Promise.race([view.waitFor({ timeout: 20_000 }), err.waitFor({ timeout: 20_000 })]);
    if (await err.count()) {
      // Until the relay pays one-merchant sales with basic Native, its refusal is shown in words.
      expect(await err.textContent()).toContain('单一商户');
      await shot(page, 'cashier-single-merchant-relay-refused');
      await page.locator('.btn.clear').click();
    } else {
      const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
      const o = await relayOrder(stack.relayUrl, stack.cashierToken, no);
      expect(o.sub_orders).toHaveLength(1);
      expect(await readScreenQr(page)).toBe(o.code_url);
      await shot(page, 'cashier-single-merchant-qr');
      await page.keyboard.press('Escape');
      await page.locator('[data-testid=cashier]').waitFor();
    }
  });

  it('PAYERROR shows at once as failed and offers a new QR for the same sale', async () => {
    const { page } = app;
    await addFirstItem(0);
    await addFirstItem(1);
    const total = await page.locator('[data-testid=total]').textContent();
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    const code = (await relayOrder(stack.relayUrl, stack.cashierToken, no)).code_url!;
    await sandboxPay(stack.sandboxUrl, code, { outcome: 'PAYERROR' });
    const t0 = Date.now();
    await page.locator('[data-testid=order-status][data-state=PAYERROR]').waitFor({ timeout: 15_000 });
    const shownAfterMs = Date.now() - t0;
    expect(await page.locator('[data-testid=order-failed]').textContent()).toContain('支付失败');
    const again = page.locator('[data-testid=new-qr]');
    await again.waitFor();
    await shot(page, 'cashier-payerror');
    await again.click();
    await page.waitForFunction((old) => {
      const v = document.querySelector('[data-testid=order-view]');
      return !!v && v.getAttribute('data-order') !== old && !!document.querySelector('[data-testid=qr][data-ready="1"]');
    }, no);
    const newNo = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    expect(newNo).not.toBe(no);
    expect(await page.locator('[data-testid=order-total]').textContent()).toBe(total);
    const [oldOrder, newOrder] = await Promise.all([relayOrder(stack.relayUrl, stack.cashierToken, no), relayOrder(stack.relayUrl, stack.cashierToken, newNo)]);
    expect(newOrder.sub_orders.map((x) => [x.mchid, x.description, x.amount])).toEqual(oldOrder.sub_orders.map((x) => [x.mchid, x.description, x.amount]));
    expect(await readScreenQr(page)).toBe(newOrder.code_url);
    await shot(page, 'cashier-payerror-new-qr');
    console.log(`PAYERROR on screen ${shownAfterMs} ms after the customer's failed payment`);
    // Back at the main screen when the next attempt fails too: a notice leads back to it.
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
    await sandboxPay(stack.sandboxUrl, newOrder.code_url!, { outcome: 'PAYERROR' });
    const notice = page.locator('[data-testid=failed-notice]');
    await notice.waitFor({ timeout: 15_000 });
    expect(await notice.textContent()).toContain(newNo);
    await shot(page, 'cashier-payerror-notice');
    await notice.click();
    await page.locator(`[data-testid=order-view][data-order="${newNo}"] [data-testid=new-qr]`).waitFor();
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=cashier]').waitFor();
  });

  it('the cart scrolls to the line just added', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    // Every catalogue item of every merchant: more lines than the cart shows at once.
    for (let i = 0; i < merchants.length; i++) {
      await page.locator('.merchant-tab').nth(i).click();
      const items = page.locator('.catalog-grid .item');
      for (let k = 0; k < await items.count(); k++) await items.nth(k).click();
    }
    await page.keyboard.type('8');
    const cart = page.locator('[data-testid=cart]');
    const overflow = await cart.evaluate((el) => el.scrollHeight > el.clientHeight);
    const last = page.locator('[data-testid=cart] .cart-line').last();
    const [box, line] = await Promise.all([cart.boundingBox(), last.boundingBox()]);
    expect(line!.y).toBeGreaterThanOrEqual(box!.y - 1);
    expect(line!.y + line!.height).toBeLessThanOrEqual(box!.y + box!.height + 1);
    if (overflow) expect(await cart.evaluate((el) => el.scrollTop)).toBeGreaterThan(0);
    await shot(page, 'cashier-cart-scrolled');
    await page.locator('.btn.clear').click();
  });

  it('a page opened without a start link says it has expired (no secret in the URL, the cookie is the key)', async () => {
    const stray = await openPage(`${stack.webOrigin}/#secret=not-a-credential`);
    try {
      const note = stray.page.locator('[data-testid=session-expired]');
      await note.waitFor({ timeout: 15_000 });
      expect(await note.textContent()).toContain('此页面已失效');
      // A fragment from an old start link is taken off the address bar.
      expect(stray.page.url()).not.toContain('secret=');
      await shot(stray.page, 'web-session-expired');
    } finally {
      await stray.close();
    }
    // The real app window (its cookie) is unaffected.
    expect(await app.page.locator('[data-testid=connection]').getAttribute('data-state')).toBe('online');
  });
});
