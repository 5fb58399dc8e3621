/**
 * Counter operations end to end in Chromium on the full local stack with a capture printer: the
 * manager sets a PIN; at a cashier terminal (no manager token) a cashier opens a shift and sells, a
 * manager unlocks the manager screen with the PIN (a wrong PIN first), sees the day-end; the cashier
 * closes the shift and the printed shift report's figures are the relay's; the shift CSV downloads
 * with a BOM; a past order found by its WeChat Pay transaction id shows its timeline and its receipt
 * is reprinted (REPRINT on paper, and in the timeline).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderTimeline, ShiftReport } from '../../shared/contracts/counter-api';
import { fenToYuan } from '../../shared/terminal/printing/format';
import type { EscPosCapture } from '../helpers/escpos-capture';
import type { Stack } from '../helpers/stack';
import { shot, type Session } from './browser';
import { startTill, type Till } from './till';
import { relayOrder, sandboxPay } from './sandbox-client';

let capture: EscPosCapture;
let stack: Stack;
let app: Session;
let till: Till;

beforeAll(async () => {
  till = await startTill({ queryAfterSeconds: 1 });
  ({ capture, stack, app } = till);
}, 60_000);

afterAll(() => till?.close());

async function relayGet<T>(path: string, token = stack.cashierToken): Promise<T> {
  const res = await fetch(`${stack.relayUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${path} → ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Sells one item of each of the first `merchants` merchants and returns the order number (paid when `pay`). */
async function sell(merchants: number, pay: boolean): Promise<string> {
  const { page } = app;
  await page.locator('[data-testid=tab-cashier]').click();
  for (let i = 0; i < merchants; i++) {
    await page.locator('.merchant-tab').nth(i).click();
    await page.locator('.catalog-grid .item').first().click();
  }
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=qr][data-ready="1"]').waitFor();
  const no = (await page.locator('[data-testid=order-view]').getAttribute('data-order'))!;
  if (pay) {
    const code = (await relayOrder(stack.relayUrl, stack.cashierToken, no)).code_url!;
    await sandboxPay(stack.sandboxUrl, code);
    await page.locator('[data-testid=paid][data-state=SUCCESS]').waitFor({ timeout: 15_000 });
  }
  // Enter after payment, Esc while waiting: back to a new sale (the order keeps going).
  await page.keyboard.press(pay ? 'Enter' : 'Escape');
  await page.locator('[data-testid=cashier]').waitFor();
  return no;
}

const yuan = (fen: number) => `¥${fenToYuan(fen)}`;
const text0 = (job: { decoded: { text: string } }) => job.decoded.text;

/** The first paper from index `from` on whose text has every one of `words` (other papers may come out meanwhile). */
async function paper(from: number, words: string[], timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  for (let i = from; ; i++) {
    const job = await capture.waitForJob(i, Math.max(1, end - Date.now()));
    if (words.every((w) => job.decoded.text.includes(w))) return job;
  }
}

describe('counter operations', () => {
  let paidNo = '';

  it('the manager sets the PIN; the counter then runs without a manager token', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-manager]').click();
    await page.locator('[data-testid=mtab-pin]').click();
    await page.locator('[data-testid=pin-status][data-set=false]').waitFor();
    await page.locator('[data-testid=pin-new]').fill('4826');
    await page.locator('[data-testid=pin-repeat]').fill('4825');
    await page.locator('[data-testid=pin-save]').click();
    await page.locator('[data-testid=pin-note]').waitFor();
    expect(await page.locator('[data-testid=pin-note]').textContent()).toContain('不一致');
    await page.locator('[data-testid=pin-repeat]').fill('4826');
    await page.locator('[data-testid=pin-save]').click();
    await page.locator('[data-testid=pin-status][data-set=true]').waitFor();
    await shot(page, 'counter-pin-setup');
    // From here on this is a plain cashier terminal.
    const r = await stack.services.saveSettings({ manager_token: null });
    expect(r.ok).toBe(true);
    await page.reload();
    await page.locator('[data-testid=connection][data-state=online]').waitFor({ timeout: 20_000 });
    expect((await stack.services.session()).manager).toBe(false);
  });

  it('a cashier opens a shift and sells', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-shift]').click();
    await page.locator('[data-testid=shift-none]').waitFor();
    await page.locator('[data-testid=shift-cashier]').fill('小王');
    await shot(page, 'counter-shift-none');
    await page.locator('[data-testid=shift-open]').click();
    await page.locator('[data-testid=shift-current]').waitFor();
    paidNo = await sell(2, true);
    await sell(3, true);
    await sell(2, false); // left open
    await page.locator('[data-testid=tab-shift]').click();
    await page.locator('[data-testid=shift-report-sales][data-count="2"]').waitFor();
    await shot(page, 'counter-shift-open');
  });

  it('a manager unlocks the manager screen at this counter with the PIN (a wrong one first)', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-manager]').click();
    await page.locator('[data-testid=pin-unlock]').waitFor();
    await page.locator('[data-testid=pin-input]').fill('1111');
    await page.locator('[data-testid=pin-unlock-go]').click();
    const err = page.locator('[data-testid=pin-error]');
    await err.waitFor();
    expect(await err.textContent()).toContain('还可以再试 4 次');
    await shot(page, 'counter-pin-unlock');
    await page.locator('[data-testid=pin-input]').fill('4826');
    await page.locator('[data-testid=pin-unlock-go]').click();
    await page.locator('[data-testid=pin-banner]').waitFor();
    await page.locator('[data-testid=manager]').waitFor();
    // An elevated counter cannot change the PIN; the elevation never reaches the screen.
    expect(await page.locator('[data-testid=mtab-pin]').count()).toBe(0);
    const session = await stack.services.session();
    expect(session.manager).toBe(true);
    expect(Object.keys(session)).not.toContain('elevation');
    expect(Date.parse(session.manager_until!) - Date.now()).toBeGreaterThan(60_000);
    await page.locator('[data-testid=mtab-dayend]').click();
    await page.locator('[data-testid=dayend-report-sales][data-count="2"]').waitFor();
    expect(await page.locator('[data-testid=bill-status][data-status=NEVER_RUN]').count()).toBeGreaterThan(0);
    await shot(page, 'counter-dayend');
    // The manager refunds ¥5.00 of the first sale's first sub-order from the order detail, at this counter.
    await page.locator('[data-testid=tab-history]').click();
    await page.locator('[data-testid=history-q]').fill(paidNo);
    await page.locator('[data-testid=history-go]').click();
    await page.locator(`[data-testid=history-row][data-order="${paidNo}"]`).click();
    const panel = page.locator(`[data-testid=refund-panel][data-order="${paidNo}"]`);
    await panel.waitFor();
    await panel.locator('[data-testid=refund-amount]').fill('5.00');
    await panel.locator('[data-testid=refund-reason]').fill('少一份');
    await panel.locator('[data-testid=refund-submit]').click();
    await page.locator('[data-testid=refund-confirm-yes]').click();
    await panel.locator('[data-testid=refund-row][data-status=SUCCESS]').waitFor({ timeout: 20_000 });
    await page.locator('[data-testid=timeline-entry][data-type=refund]').first().waitFor({ timeout: 10_000 });
    await shot(page, 'counter-order-refunded');
    await page.locator('[data-testid=detail-back]').click();
    expect(app.errors).toEqual([]);
  });

  it('the cashier closes the shift: the printed report adds up to the relay\'s figures; the CSV downloads with a BOM', async () => {
    const { page } = app;
    await page.locator('[data-testid=tab-shift]').click();
    const id = Number(await page.locator('[data-testid=shift-current]').getAttribute('data-id'));
    const before = capture.jobs.length;
    await page.locator('[data-testid=shift-close]').click();
    await page.locator('[data-testid=confirm-shift-close-yes]').click();
    await page.locator('[data-testid=shift-closed]').waitFor();
    const printed = await paper(before, ['交班报表']);
    await page.locator('[data-testid=shift-print][data-state=done]').waitFor();
    await shot(page, 'counter-shift-closed');

    const report = await relayGet<ShiftReport>(`/v1/shifts/${id}/report`);
    expect(report.shift.closed_at).not.toBeNull();
    expect(report.sales.count).toBe(2);
    expect(report.open_orders.count).toBe(1);
    expect(report.refunds).toMatchObject({ count: 1, amount: 500, available: true });
    expect(report.net).toBe(report.sales.amount - 500);
    expect(text0(printed)).toContain(`退款 1 笔`);
    expect(text0(printed)).toContain(yuan(-500));
    const text = printed.decoded.text;
    expect(text).toContain('交班报表');
    expect(text).toContain('小王');
    expect(text).toContain(`销售 ${report.sales.count} 笔`);
    expect(text).toContain(yuan(report.sales.amount));
    expect(text).toContain(yuan(report.net));
    expect(text).toContain(`未付订单 ${report.open_orders.count} 笔`);
    expect(text).toContain(yuan(report.open_orders.amount));
    let sum = 0;
    for (const m of report.merchants.filter((x) => x.count > 0)) {
      expect(text).toContain(m.name);
      expect(text).toMatch(new RegExp(`销售 ${m.count} 笔\\s+${yuan(m.amount).replace(/[.$¥]/g, '\\$&')}`));
      if (m.refund_count) expect(text).toMatch(new RegExp(`退款 ${m.refund_count} 笔\\s+${yuan(-m.refund_amount).replace(/[.$¥-]/g, '\\$&')}`));
      sum += m.amount;
    }
    expect(sum).toBe(report.sales.amount);
    expect(printed.decoded.cut).toBe(true);
    expect(text).not.toContain('REPRINT');

    // Printed again from the screen: the same figures, marked REPRINT.
    const n = capture.jobs.length;
    await page.locator('[data-testid=shift-reprint]').click();
    const reprinted = await paper(n, ['交班报表', '重印 REPRINT']);
    expect(reprinted.decoded.text).toContain(yuan(report.net));
    await page.locator('[data-testid=shift-print][data-state=done]').waitFor();

    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-testid=shift-csv]').click()]);
    expect(download.suggestedFilename()).toBe(`shift-${id}.csv`);
    const bytes = readFileSync((await download.path())!);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(bytes.subarray(3).toString('utf8')).toContain(`合计 Total,,2,${fenToYuan(report.sales.amount)},1,5.00,${fenToYuan(report.net)}\r\n`);
  });

  it('a past order found by its transaction id shows its timeline and is reprinted (REPRINT)', async () => {
    const { page } = app;
    const order = await relayOrder(stack.relayUrl, stack.cashierToken, paidNo);
    const txid = order.sub_orders[1]!.transaction_id!;
    expect(txid).toBeTruthy();
    await page.locator('[data-testid=tab-history]').click();
    await page.locator('[data-testid=history-q]').fill(txid);
    await page.locator('[data-testid=history-go]').click();
    const rows = page.locator('[data-testid=history-row]');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-order')).toBe(paidNo);
    await shot(page, 'counter-history');
    await rows.first().click();
    await page.locator('[data-testid=order-detail]').waitFor();
    await page.locator('[data-testid=timeline-entry][data-type=paid]').waitFor();
    expect(await page.locator(`[data-testid=detail-sub][data-txid="${txid}"]`).count()).toBe(1);
    // slip, receipt, and the refund slip is not an order paper of this kind
    expect(await page.locator('[data-testid=timeline-entry][data-type=printed]').count()).toBe(2);
    const before = capture.jobs.length;
    await page.locator('[data-testid=reprint-receipt]').click();
    const again = await paper(before, ['支付成功', '重印 REPRINT']);
    expect(again.decoded.text).toContain('重印 REPRINT');
    expect(again.decoded.text).toContain('支付成功');
    expect(again.decoded.text).toContain(txid);
    // The reprint reaches the relay's timeline.
    await page.locator('[data-testid=timeline-entry][data-type=printed][data-reprint=true]').waitFor({ timeout: 10_000 });
    const tl = await relayGet<OrderTimeline>(`/v1/orders/${paidNo}/timeline`);
    expect(tl.entries.filter((e) => e.type === 'printed').map((e) => [e.detail.kind, e.detail.reprint])).toEqual([['slip', false], ['receipt', false], ['receipt', true]]);
    expect(['notification', 'query']).toContain(tl.entries.find((e) => e.type === 'paid')!.detail.via);
    await shot(page, 'counter-order-detail');
    expect(app.errors).toEqual([]);
  });
});
