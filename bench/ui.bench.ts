/**
 * UI latency at the till, on the full local stack in Debian Chromium (the e2e harness):
 *  - 收款 pressed → QR painted on screen            (target p50/p95 ≤ 300 ms)
 *  - sandbox payment (POST /sandbox/pay returned) → "paid" painted (target ≤ 500 ms)
 * Each against a baseline measured in the same run without the UI: the terminal services'
 * createOrder call, and the pay → order.updated(SUCCESS) event reaching the terminal services.
 * Times taken in the page are wall-clock (Date.now at the frame after the DOM change), the same
 * clock as this process on one machine.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { startStack } from '../test/helpers/stack';
import { startEscPosCapture } from '../test/helpers/escpos-capture';
import { closeBrowser, openApp } from '../test/e2e/browser';
import { sandboxPay } from '../test/e2e/sandbox-client';
import type { TerminalEvent } from '../shared/contracts/terminal-api';

const ORDERS = 20;
const WARMUP = 3;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const fmt = (n: number) => n.toFixed(1).padStart(7);

const root = fileURLToPath(new URL('..', import.meta.url));
if (!existsSync(`${root}dist/renderer/index.html`)) {
  await build({ configFile: `${root}renderer/vite.config.ts`, logLevel: 'warn' });
}

const capture = await startEscPosCapture();
const stack = await startStack({ printer: capture.uri });
const app = await openApp(stack.webUrl);
const { page } = app;

// Probe in the page: timestamps of the 收款 key press, of the QR canvas being drawn, and of the
// paid panel appearing, each taken at the next animation frame (i.e. when it can be seen).
// (A string, not a function: the TS loader would wrap named closures in helpers the page lacks.)
await page.evaluate(`(() => {
  window.__probe = {};
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') window.__probe.press = Date.now(); }, true);
  const seen = (key, sel) => {
    if (window.__probe[key] === undefined && document.querySelector(sel)) {
      window.__probe[key] = -1;
      requestAnimationFrame(() => { window.__probe[key] = Date.now(); });
    }
  };
  new MutationObserver(() => {
    seen('qr', '[data-testid=qr][data-ready="1"]');
    seen('paid', '[data-testid=paid]');
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
})()`);

const merchants = await stack.services.listMerchants();
const qrUi: number[] = [];
const paidUi: number[] = [];
for (let i = 0; i < ORDERS + WARMUP; i++) {
  await page.locator('.merchant-tab').nth(0).click();
  await page.locator('.catalog-grid .item').nth(i % 3).click();
  await page.locator('.merchant-tab').nth(1).click();
  await page.locator('.catalog-grid .item').first().click();
  await page.evaluate(() => { (window as unknown as { __probe: Record<string, number> }).__probe = {}; });
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => ((window as unknown as { __probe: Record<string, number> }).__probe.qr ?? -1) > 0);
  const code = (await page.locator('[data-testid=qr]').getAttribute('data-code-url'))!;
  await sandboxPay(stack.sandboxUrl, code);
  const payReturned = Date.now();
  await page.waitForFunction(() => ((window as unknown as { __probe: Record<string, number> }).__probe.paid ?? -1) > 0);
  const p = await page.evaluate(() => (window as unknown as { __probe: Record<string, number> }).__probe);
  if (i >= WARMUP) {
    qrUi.push(p.qr! - p.press!);
    paidUi.push(p.paid! - payReturned);
  }
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=cashier]').waitFor();
}

// Baselines without the UI: the same backend work measured at the terminal services.
const createBase: number[] = [];
const paidBase: number[] = [];
for (let i = 0; i < ORDERS + WARMUP; i++) {
  const t0 = performance.now();
  const o = await stack.services.createOrder({
    sub_orders: [
      { mchid: merchants[0]!.mchid, description: '基准', amount: 1000 + i },
      { mchid: merchants[1]!.mchid, description: '基准', amount: 500 },
    ],
  }, `bench-${Date.now()}-${i}`);
  const t1 = performance.now();
  const success = new Promise<number>((ok) => {
    const off = stack.services.onEvent((e: TerminalEvent) => {
      if (e.type === 'order.updated' && e.order.combine_out_trade_no === o.combine_out_trade_no && e.order.state === 'SUCCESS') {
        off();
        ok(Date.now());
      }
    });
  });
  await sandboxPay(stack.sandboxUrl, o.code_url!);
  const payReturned = Date.now();
  const at = await success;
  if (i >= WARMUP) {
    createBase.push(t1 - t0);
    paidBase.push(at - payReturned);
  }
}

await app.close();
await closeBrowser();
await stack.close();
await capture.close();

const rows: [string, number[], number[], number][] = [
  ['收款 → QR visible', qrUi, createBase, 300],
  ['pay → "paid" shown', paidUi, paidBase, 500],
];
console.log(`ui latency over ${ORDERS} orders (after ${WARMUP} warm-up), ms; baseline = same step at the terminal services, no UI`);
console.log('step                      p50     p95  base p50 base p95  ratio p50  target  verdict');
for (const [name, ui, base, target] of rows) {
  const p50 = pct(ui, 50), p95 = pct(ui, 95), b50 = pct(base, 50), b95 = pct(base, 95);
  const ratio = b50 > 0 ? (p50 / b50).toFixed(2) : 'n/a';
  console.log(`${name.padEnd(22)} ${fmt(p50)} ${fmt(p95)}  ${fmt(b50)}  ${fmt(b95)}  ${String(ratio).padStart(8)}  ${String(target).padStart(6)}  ${p95 <= target ? 'OK' : 'OVER'}`);
}
