/**
 * Single-merchant sales end to end in Chromium on the full local stack (sandbox, relay,
 * terminal services, web host, a TCP capture printer): a one-merchant sale goes through the
 * same cashier screen (QR, slip, paid, receipt) paid with basic Native through the sandbox,
 * a stale one is closed on the manager screen, and the day is reconciled against that
 * merchant's own bill.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../helpers/stack';
import type { EscPosCapture } from '../helpers/escpos-capture';
import { readScreenQr, shot, type Session } from './browser';
import { startTill, type Till } from './till';
import { adjustBill, relayOrder, sandboxPay, sandboxRequests, shiftClock } from './sandbox-client';
import type { Order } from '../../shared/contracts/relay-api';
import { formatFen } from '../../renderer/src/money';

// Closing is refused for the first few seconds after creation (the real rule is 5 minutes).
const CLOSE_MIN_AGE = 6;

let capture: EscPosCapture;
let stack: Stack;
let app: Session;
let till: Till;
/** The sale paid in the first test, reconciled in the last. */
let paidSingle: Order;

beforeAll(async () => {
  till = await startTill({ queryAfterSeconds: 1, closeMinAgeSeconds: CLOSE_MIN_AGE });
  ({ capture, stack, app } = till);
});

afterAll(() => till?.close());

async function waitState(no: string, state: Order['state']): Promise<Order> {
  for (let i = 0; i < 150; i++) {
    const o = await relayOrder(stack.relayUrl, stack.managerToken, no);
    if (o.state === state) return o;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`order ${no} never became ${state}`);
}

const beijingToday = () => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);

async function sandboxState(outTradeNo: string): Promise<string | undefined> {
  const r = await fetch(`${stack.sandboxUrl}/sandbox/orders`);
  const body = (await r.json()) as { orders: { combine_out_trade_no: string; kind: string; state: string }[] };
  return body.orders.find((o) => o.combine_out_trade_no === outTradeNo && o.kind === 'basic')?.state;
}

describe('one-merchant sale', () => {
  it('is charged on the cashier screen like any sale: QR = code_url, slip printed, paid through the sandbox, receipt printed', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    await page.locator('.merchant-tab').nth(1).click();
    await page.locator('.catalog-grid .item').first().click();
    const totalText = await page.locator('[data-testid=total]').textContent();
    await page.keyboard.press('Enter');

    await page.locator('[data-testid=qr][data-ready="1"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('[data-testid=cashier-error]').count()).toBe(0);
    const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
    const order = await relayOrder(stack.relayUrl, stack.cashierToken, no);
    expect(order.kind).toBe('single');
    expect(order.sub_orders.map((s) => s.mchid)).toEqual([merchants[1]!.mchid]);
    expect(await page.locator('[data-testid=order-total]').textContent()).toBe(totalText);
    expect(await page.locator('[data-testid=countdown]').textContent()).toMatch(/剩余 \d+:\d{2}/);
    const scanned = await readScreenQr(page);
    expect(scanned).toBe(order.code_url);
    // Created by the merchant itself with basic Native.
    const creates = await sandboxRequests(stack.sandboxUrl, { path: '/v3/pay/transactions/native' });
    expect(creates.some((r) => r.mchid === merchants[1]!.mchid && r.status === 200 && r.authenticated)).toBe(true);
    await shot(page, 'single-qr');

    // The slip at the printer carries the same QR payload and the order number.
    const slip = await capture.waitForJob(0, 15_000);
    expect(slip.decoded.qr.concat(slip.decoded.rasters.map((r) => r.qr ?? ''))).toContain(order.code_url);
    expect(slip.decoded.text).toContain(no);

    const paid = await sandboxPay(stack.sandboxUrl, scanned!);
    expect(paid).toMatchObject({ kind: 'basic', state: 'SUCCESS', mchid: merchants[1]!.mchid });
    const done = page.locator('[data-testid=paid][data-state=SUCCESS]');
    await done.waitFor({ timeout: 15_000 });
    expect(await done.textContent()).toContain('收款成功');
    await shot(page, 'single-paid');

    const receipt = await capture.waitForJob(1, 15_000);
    expect(receipt.decoded.text).toContain('支付成功');
    expect(receipt.decoded.text).toContain(no);
    expect(receipt.decoded.cut).toBe(true);
    await page.locator('.print-row[data-kind=receipt][data-state=done]').waitFor({ timeout: 15_000 });
    paidSingle = await waitState(no, 'SUCCESS');
    expect(paidSingle.sub_orders[0]!.transaction_id).toBe(paid.sub_orders[0]!.transaction_id);

    await page.keyboard.press('Enter');
    await page.locator('[data-testid=cashier]').waitFor();
  });

  it('is closed when stale on the manager screen (after the close rule allows it), at WeChat Pay too, and tagged 单商户', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    const order = await stack.services.createOrder({ sub_orders: [{ mchid: merchants[2]!.mchid, description: '叉烧饭', amount: 2600 }] }, `e2e-single-stale-${Date.now()}`);
    expect(order.kind).toBe('single');
    const no = order.combine_out_trade_no;

    await page.locator('[data-testid=tab-manager]').click();
    await page.locator('[data-testid=mtab-stale]').click();
    await page.locator('[data-testid=stale-minutes]').fill('0');
    await page.locator('[data-testid=stale-refresh]').click();
    const row = page.locator(`[data-testid=stale-row][data-order="${no}"]`);
    await row.waitFor();
    const button = row.locator('[data-testid=close-order]');
    const closedRow = `[data-testid=stale-row][data-order="${no}"][data-state=CLOSED]`;
    const buttonSel = `[data-order="${no}"] [data-testid=close-order]`;
    // Before the rule allows it, the screen counts down (its local 5-minute estimate) and asks first.
    expect(await button.textContent()).toMatch(/后可关闭$/);
    await button.click();
    await page.locator('[data-testid=confirm-close]').waitFor();
    await page.locator('[data-testid=confirm-close-yes]').click();
    // The relay answers CLOSE_TOO_EARLY with its own wait (here a few seconds), counted down on
    // the button; or, on a slow machine, the order is already old enough and closes.
    await page.waitForFunction(
      ([closed, sel]) => document.querySelector(closed) !== null || /^0:0\d 后可关闭$/.test(document.querySelector(sel)?.textContent ?? ''),
      [closedRow, buttonSel] as const,
    );
    if (await page.locator(closedRow).count() === 0) {
      await shot(page, 'single-stale-countdown');
      await page.waitForFunction(
        (sel) => !(document.querySelector(sel) as HTMLButtonElement | null)?.disabled,
        buttonSel,
        { timeout: (CLOSE_MIN_AGE + 10) * 1000 },
      );
      await button.click();
      await page.keyboard.press('Enter');
    }
    await page.locator(closedRow).waitFor({ timeout: 15_000 });
    expect((await relayOrder(stack.relayUrl, stack.managerToken, no)).state).toBe('CLOSED');
    expect(await sandboxState(order.sub_orders[0]!.out_trade_no)).toBe('CLOSED');
    // Closed by the merchant itself with the basic close.
    const closes = await sandboxRequests(stack.sandboxUrl, { path: `/v3/pay/transactions/out-trade-no/${order.sub_orders[0]!.out_trade_no}/close` });
    expect(closes.map((c) => [c.mchid, c.status])).toEqual([[merchants[2]!.mchid, 204]]);
    await shot(page, 'single-stale-closed');

    await page.locator('[data-testid=mtab-search]').click();
    await page.locator('[data-testid=search-q]').fill(no);
    await page.locator('[data-testid=search-state]').selectOption('');
    await page.locator('[data-testid=search-go]').click();
    const found = page.locator(`[data-testid=search-row][data-order="${no}"]`);
    await found.waitFor();
    expect(await found.getAttribute('data-kind')).toBe('single');
    expect(await found.locator('[data-testid=kind-tag]').textContent()).toBe('单商户');
  });

  it('is reconciled against that merchant’s own bill on the manager screen', async () => {
    const { page } = app;
    expect(paidSingle?.state).toBe('SUCCESS');
    const sub = paidSingle.sub_orders[0]!;
    // Bills are ready the next day from 10:00 Beijing: move the simulator's business clock on.
    await shiftClock(stack.sandboxUrl, 2 * 86400);
    try {
      await page.locator('[data-testid=mtab-bills]').click();
      await page.locator('[data-testid=bill-date]').fill(beijingToday());
      await page.locator('[data-testid=reconcile]').click();
      const report = page.locator('[data-testid=bill-report]');
      await report.waitFor({ timeout: 30_000 });
      expect(await report.getAttribute('data-ok')).toBe('true');
      expect(await page.locator('[data-testid=mismatch]').count()).toBe(0);
      // The single sale is a row of its own merchant's bill, which that merchant applied for itself.
      const bills = await sandboxRequests(stack.sandboxUrl, { path: '/v3/bill/tradebill', mchid: sub.mchid });
      expect(bills.some((r) => r.authenticated && r.status === 200)).toBe(true);
      await shot(page, 'single-bills-ok');

      // That merchant's bill says another amount for the single sale: the screen names it.
      await adjustBill(stack.sandboxUrl, { out_trade_no: sub.out_trade_no, amount: sub.amount - 100 });
      await page.locator('[data-testid=reconcile]').click();
      const row = page.locator(`[data-testid=mismatch][data-out-trade-no="${sub.out_trade_no}"]`);
      await row.waitFor({ timeout: 30_000 });
      expect(await page.locator('[data-testid=bill-report]').getAttribute('data-ok')).toBe('false');
      expect(await page.locator('[data-testid=mismatch]').count()).toBe(1);
      expect(await row.getAttribute('data-kind')).toBe('AMOUNT_MISMATCH');
      const text = await row.textContent();
      expect(text).toContain('金额不一致');
      expect(text).toContain(formatFen(sub.amount));
      expect(text).toContain(formatFen(sub.amount - 100));
      await shot(page, 'single-bills-mismatch');
    } finally {
      await shiftClock(stack.sandboxUrl, 0);
    }
  });
});
