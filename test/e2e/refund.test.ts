/**
 * Refunds end to end on the full local stack (sandbox, relay, terminal services, web host, a TCP
 * capture printer) in Chromium: a 3-merchant order is paid, part of one sub-order and all of
 * another are refunded from the manager screen, both reach SUCCESS live, the refund slips
 * (退款凭证) arrive at the printer, the paid receipt's reprint carries the refund lines, the
 * takings are net of the refunds, and the day's bill reconciliation matches the refunds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../helpers/stack';
import type { CapturedJob, EscPosCapture } from '../helpers/escpos-capture';
import { shot, type Session } from './browser';
import { startTill, type Till } from './till';
import { relayOrder, sandboxPay, sandboxRequests, shiftClock } from './sandbox-client';

let stack: Stack;
let app: Session;
let till: Till;
let capture: EscPosCapture;

beforeAll(async () => {
  till = await startTill();
  ({ capture, stack, app } = till);
}, 120_000);

afterAll(() => till?.close());

const beijingToday = () => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);

async function until<T>(fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const jobWith = (...parts: string[]) => until<CapturedJob>(() => capture.jobs.find((j) => parts.every((p) => j.decoded.text.includes(p))));

describe('refunds from the manager screen', () => {
  it('refunds part of one sub-order and all of another, live to SUCCESS, with slips, net takings and a matching bill', async () => {
    const { page } = app;
    const merchants = await stack.services.listMerchants();
    const order = await stack.services.createOrder({
      sub_orders: [
        { mchid: merchants[0]!.mchid, description: '红烧牛肉面', amount: 2800 },
        { mchid: merchants[1]!.mchid, description: '珍珠奶茶', amount: 1500 },
        { mchid: merchants[2]!.mchid, description: '叉烧饭', amount: 3200 },
      ],
    }, `e2e-refund-${Date.now()}`);
    const no = order.combine_out_trade_no;
    await sandboxPay(stack.sandboxUrl, order.code_url!);
    await until(async () => (await relayOrder(stack.relayUrl, stack.managerToken, no)).state === 'SUCCESS');
    const [a, b, c] = order.sub_orders;

    await page.locator('[data-testid=tab-manager]').click();
    await page.locator('[data-testid=mtab-search]').click();
    await page.locator('[data-testid=search-q]').fill(no);
    await page.locator('[data-testid=search-go]').click();
    const row = page.locator(`[data-testid=search-row][data-order="${no}"]`);
    await row.waitFor();
    await row.locator('[data-testid=refund-open]').click();
    const panel = page.locator(`[data-testid=refund-panel][data-order="${no}"]`);
    await panel.waitFor();
    // The first sub-order is chosen, with all of it as the default amount.
    expect(await panel.locator('[data-testid=refund-amount]').inputValue()).toBe('28.00');

    // 1. Part of the noodles: ¥10.05, fen-exact.
    await panel.locator('[data-testid=refund-amount]').fill('10.05');
    await panel.locator('[data-testid=refund-reason]').fill('少放了牛肉');
    await panel.locator('[data-testid=refund-submit]').click();
    const dialog = page.locator('[data-testid=refund-confirm]');
    await dialog.waitFor();
    const words = (await dialog.textContent())!;
    expect(words).toContain(merchants[0]!.name);
    expect(words).toContain('¥10.05');
    expect(words).toContain('¥17.95');
    await shot(page, 'refund-confirm');
    await page.locator('[data-testid=refund-confirm-yes]').click();
    const first = panel.locator(`[data-testid=refund-row][data-out-trade-no="${a!.out_trade_no}"]`);
    await first.waitFor();
    await shot(page, 'refund-processing');
    await panel.locator(`[data-testid=refund-row][data-out-trade-no="${a!.out_trade_no}"][data-status=SUCCESS]`).waitFor({ timeout: 20_000 });
    expect(await panel.locator(`[data-testid=refund-sub][data-out-trade-no="${a!.out_trade_no}"]`).getAttribute('data-left')).toBe('1795');

    // 2. All of the milk tea: its default amount is everything left.
    await panel.locator(`[data-testid=refund-sub][data-out-trade-no="${b!.out_trade_no}"] input`).check();
    await until(async () => (await panel.locator('[data-testid=refund-amount]').inputValue()) === '15.00');
    await panel.locator('[data-testid=refund-submit]').click();
    await page.locator('[data-testid=refund-confirm-yes]').click();
    await panel.locator(`[data-testid=refund-row][data-out-trade-no="${b!.out_trade_no}"][data-status=SUCCESS]`).waitFor({ timeout: 20_000 });
    expect(await panel.locator(`[data-testid=refund-sub][data-out-trade-no="${b!.out_trade_no}"]`).getAttribute('data-left')).toBe('0');
    await shot(page, 'refund-success');

    // Over what is left: refused on screen before anything is sent.
    await panel.locator(`[data-testid=refund-sub][data-out-trade-no="${a!.out_trade_no}"] input`).check();
    await panel.locator('[data-testid=refund-amount]').fill('17.96');
    await panel.locator('[data-testid=refund-submit]').click();
    expect(await panel.locator('[data-testid=refund-error]').textContent()).toContain('¥17.95');
    // Too soon after the last partial refund (WeChat Pay's one-minute rule): the relay's refusal in words.
    await panel.locator('[data-testid=refund-amount]').fill('1.00');
    await panel.locator('[data-testid=refund-submit]').click();
    await page.locator('[data-testid=refund-confirm-yes]').click();
    await until(async () => (await panel.locator('[data-testid=refund-error]').textContent())?.includes('1 分钟'));
    await shot(page, 'refund-too-soon');

    const after = await relayOrder(stack.relayUrl, stack.managerToken, no);
    expect(after.refunds!.map((r) => [r.out_trade_no, r.amount, r.status])).toEqual([[a!.out_trade_no, 1005, 'SUCCESS'], [b!.out_trade_no, 1500, 'SUCCESS']]);
    expect(after.sub_orders.map((s) => s.refunded_amount)).toEqual([1005, 1500, 0]);
    // Each refund was signed by its own sub-order's merchant.
    const signed = (await sandboxRequests(stack.sandboxUrl, { path: '/v3/refund/domestic/refunds' })).filter((q) => q.method === 'POST' && q.status === 200);
    expect(new Set(signed.map((q) => q.mchid))).toEqual(new Set([a!.mchid, b!.mchid]));

    // The refund slips at the printer.
    for (const r of after.refunds!) {
      const slip = await jobWith('退款凭证', r.out_refund_no);
      expect(slip.decoded.text).toContain(no);
      expect(slip.decoded.text).toContain(r.out_trade_no);
      expect(slip.decoded.text).toContain(r.amount === 1005 ? '¥10.05' : '¥15.00');
      expect(slip.decoded.text).toContain('退款成功');
      expect(slip.decoded.cut).toBe(true);
    }
    // The paid receipt printed again carries the refunds.
    await stack.services.print('receipt', no, true);
    const reprint = await jobWith('支付成功', '已退款');
    expect(reprint.decoded.text).toContain('-¥10.05');
    expect(reprint.decoded.text).toContain('-¥15.00');
    expect(reprint.decoded.text).toContain('¥49.95'); // 75.00 − 25.05

    // Takings net of the refunds.
    await page.locator('[data-testid=mtab-takings]').click();
    const refunds = page.locator('[data-testid=takings-refunds]');
    await refunds.waitFor();
    expect(await refunds.getAttribute('data-amount')).toBe('2505');
    expect(await page.locator(`[data-testid=takings-bar][data-mchid="${a!.mchid}"]`).getAttribute('data-amount')).toBe(String(2800 - 1005));
    expect(await page.locator(`[data-testid=takings-bar][data-mchid="${b!.mchid}"]`).getAttribute('data-amount')).toBe('0');
    expect(await page.locator(`[data-testid=takings-bar][data-mchid="${c!.mchid}"]`).getAttribute('data-amount')).toBe('3200');
    await shot(page, 'refund-takings');

    // The day's bills (ready the next day: the simulator's clock moves on) match, refunds included.
    await shiftClock(stack.sandboxUrl, 2 * 86400);
    try {
      await page.locator('[data-testid=mtab-bills]').click();
      await page.locator('[data-testid=bill-date]').fill(beijingToday());
      await page.locator('[data-testid=reconcile]').click();
      const report = page.locator('[data-testid=bill-report]');
      await report.waitFor({ timeout: 30_000 });
      await shot(page, 'refund-bills');
      expect(await page.locator('[data-testid=mismatch]').count()).toBe(0);
      expect(await report.getAttribute('data-ok')).toBe('true');
      const run = await stack.services.reconcileBills(beijingToday());
      const byMchid = new Map(run.merchants.map((m) => [m.mchid, m]));
      expect(byMchid.get(a!.mchid)).toMatchObject({ bill_refund_count: 1, bill_refund_amount: 1005, local_refund_amount: 1005 });
      expect(byMchid.get(b!.mchid)).toMatchObject({ bill_refund_count: 1, bill_refund_amount: 1500, local_refund_amount: 1500 });
    } finally {
      await shiftClock(stack.sandboxUrl, 0);
    }
  }, 180_000);
});
