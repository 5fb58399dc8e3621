/**
 * Printer setup on the Settings screen in Chromium: store fields saved, a test page printed at the
 * ESC/POS capture printer and its result shown, the printer's status shown (online, then offline).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_QR_PAYLOAD } from '../../shared/terminal/printing/test-page';
import type { EscPosCapture } from '../helpers/escpos-capture';
import type { Stack } from '../helpers/stack';
import { shot, type Session } from './browser';
import { startTill, type Till } from './till';

let capture: EscPosCapture;
let stack: Stack;
let app: Session;
let till: Till;

beforeAll(async () => {
  till = await startTill();
  ({ capture, stack, app } = till);
}, 60_000);

afterAll(() => till?.close());

describe('printer setup', () => {
  it('saves the store header and cashier, prints a test page, shows the printer status', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-settings]').click();
    await page.locator('#f-store_name').fill('老王面馆');
    await page.locator('#f-store_address').fill('上海市静安区南京西路 1 号');
    await page.locator('#f-cashier_name').fill('小李');
    await page.locator('#f-confirm_above_fen').fill('3000');
    await page.locator('[data-testid=settings-save]').click();
    await page.locator('[data-testid=settings-status].ok').waitFor();
    expect(await stack.services.getSettings()).toMatchObject({ store_name: '老王面馆', store_address: '上海市静安区南京西路 1 号', cashier_name: '小李', confirm_above_fen: 300000 });

    await page.locator('[data-testid=printer-test]').click();
    const result = page.locator('[data-testid=printer-test-result][data-ok=true]');
    await result.waitFor();
    expect(await result.textContent()).toContain(`127.0.0.1:${capture.port}`);
    const job = (await capture.waitForJob(0)).decoded;
    expect(job.text).toContain('老王面馆');
    expect(job.text).toContain('打印测试');
    expect(job.qr).toEqual([TEST_QR_PAYLOAD]);

    await page.locator('[data-testid=printer-status]').click();
    await page.locator('[data-testid=printer-state][data-state=online]').waitFor();
    await page.locator('[data-testid=printer-setup]').scrollIntoViewIfNeeded();
    await shot(page, 'printer-setup');

    capture.setMode('offline');
    try {
      await page.locator('[data-testid=printer-status]').click();
      const offline = page.locator('[data-testid=printer-state][data-state=offline]');
      await offline.waitFor({ timeout: 10_000 });
      expect(await offline.textContent()).toContain('打印机离线');
      await shot(page, 'printer-setup-offline');
    } finally {
      capture.setMode('ack');
    }
    expect(app.errors).toEqual([]);
  });
});
