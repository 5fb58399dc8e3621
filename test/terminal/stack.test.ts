/**
 * Smoke test of the whole embedded default on loopback: terminal services create an order through
 * the real relay and sandbox, the slip prints at a TCP capture printer, the sandbox buyer pays,
 * SUCCESS arrives as an event and the paid receipt prints once; a restart reuses the data folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order } from '../../shared/contracts/relay-api';
import type { TerminalEvent } from '../../shared/contracts/terminal-api';
import { startEscPosCapture, type EscPosCapture } from '../helpers/escpos-capture';
import { startStack, type Stack } from '../helpers/stack';
import { until } from './fixtures';

let printer: EscPosCapture;
let stack: Stack;
let dir: string;
const events: TerminalEvent[] = [];

beforeAll(async () => {
  printer = await startEscPosCapture();
  dir = mkdtempSync(join(tmpdir(), 'pos-smoke-'));
  stack = await startStack({ dir, printer: printer.uri });
  stack.services.onEvent((e) => events.push(e));
});
afterAll(async () => {
  await stack?.close();
  await printer.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Receipt jobs the terminal holds for an order (queued ones included: what would print). */
const receiptJobs = async (no: string) => (await stack.services.printJobs()).filter((j) => j.kind === 'receipt' && j.combine_out_trade_no === no);


describe('embedded stack', () => {
  let order: Order;

  it('session: cashier terminal with manager unlocked and the phone page', async () => {
    const s = await stack.services.session();
    expect(s).toMatchObject({ terminal: 'cashier-1', role: 'cashier', manager: true, shell: 'web', sandbox_url: `${stack.sandboxUrl}/sandbox` });
    await until('online', () => stack.services.connection === 'online');
    expect(await stack.services.customerPhoneUrl()).toBe(`${stack.sandboxUrl}/sandbox`);
  });

  it('create → slip printed with the QR of code_url', async () => {
    const merchants = await stack.services.listMerchants();
    expect(merchants.length).toBeGreaterThanOrEqual(3);
    order = await stack.services.createOrder({
      sub_orders: [
        { mchid: merchants[0]!.mchid, description: '陶喆专辑', amount: 9900 },
        { mchid: merchants[1]!.mchid, description: '奶茶 ×2', amount: 2600 },
      ],
    }, 'smoke-key-0001');
    expect(order.state).toBe('NOTPAY');
    expect(order.code_url).toMatch(/^weixin:\/\//);
    const slip = (await printer.waitForJob(0)).decoded;
    expect(slip.qr).toEqual([order.code_url]);
    expect(slip.text).toContain('陶喆专辑');
    expect(slip.text).toContain('¥125.00');
    expect(slip.cut).toBe(true);
    // The same press retried (same idempotency key): same order, no second slip.
    const again = await stack.services.createOrder({ sub_orders: [{ mchid: merchants[0]!.mchid, description: '陶喆专辑', amount: 9900 }, { mchid: merchants[1]!.mchid, description: '奶茶 ×2', amount: 2600 }] }, 'smoke-key-0001');
    expect(again.combine_out_trade_no).toBe(order.combine_out_trade_no);
    expect((await stack.services.openOrders()).map((o) => o.combine_out_trade_no)).toContain(order.combine_out_trade_no);
  });

  it('the buyer pays → SUCCESS event → paid receipt printed once with the transaction ids', async () => {
    const res = await fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url: order.code_url }) });
    expect(res.status).toBe(200);
    const paid = (await res.json()) as { sub_orders: { out_trade_no: string; transaction_id: string }[] };
    await until('SUCCESS event', () => events.some((e) => e.type === 'order.updated' && e.order.combine_out_trade_no === order.combine_out_trade_no && e.order.state === 'SUCCESS'));
    const receipt = (await printer.waitForJob(1)).decoded;
    expect(receipt.text).toContain('支付成功');
    for (const s of paid.sub_orders) expect(receipt.text).toContain(s.transaction_id);
    expect(receipt.qr).toEqual([]);
    expect(receipt.text).not.toContain('REPRINT');
    expect(events.some((e) => e.type === 'print.job' && e.job.kind === 'receipt' && e.job.state === 'done')).toBe(true);
    expect(await receiptJobs(order.combine_out_trade_no)).toHaveLength(1);
  });

  it('reprint on demand is marked REPRINT', async () => {
    const job = await stack.services.print('receipt', order.combine_out_trade_no, true);
    expect(job).toMatchObject({ state: 'done', reprint: true });
    // Jobs print one at a time in order: a second automatic receipt queued before this reprint
    // would have been paper #2.
    expect((await printer.waitForJob(2)).decoded.text).toContain('REPRINT');
    expect(await receiptJobs(order.combine_out_trade_no)).toHaveLength(2);
    await expect(stack.services.print('slip', 'NOSUCHORDER1')).rejects.toMatchObject({ code: expect.any(String) });
  });

  it('manager calls go with the manager token; relay errors keep their code and retry_after_seconds', async () => {
    const merchants = await stack.services.listMerchants();
    const fresh = await stack.services.createOrder({ sub_orders: [{ mchid: merchants[0]!.mchid, description: '面', amount: 1500 }, { mchid: merchants[2]!.mchid, description: '茶', amount: 500 }] }, 'smoke-key-0002');
    await expect(stack.services.closeOrder(fresh.combine_out_trade_no)).rejects.toMatchObject({ code: 'CLOSE_TOO_EARLY', retry_after_seconds: expect.any(Number) });
    await expect(stack.services.print('receipt', fresh.combine_out_trade_no)).rejects.toMatchObject({ code: 'ORDER_NOT_PAID' });
    expect(Array.isArray(await stack.services.listAlerts())).toBe(true);
    await printer.waitForJob(3); // the fresh order's slip
  });

  it('a restart reuses the data folder: same tokens, same history, no duplicate receipt', async () => {
    const tokens = [stack.cashierToken, stack.managerToken];
    await stack.close();
    // Last run's ports are taken by someone else now: the restart must pick others.
    const squatters = await Promise.all([stack.sandboxUrl, stack.relayUrl].map((u) => new Promise<Server>((ok) => {
      const srv = createServer();
      srv.listen(Number(new URL(u).port), '127.0.0.1', () => ok(srv));
    })));
    const old = [stack.sandboxUrl, stack.relayUrl];
    try {
      stack = await startStack({ dir, printer: printer.uri });
    } finally {
      for (const s of squatters) s.close();
    }
    expect([stack.sandboxUrl, stack.relayUrl].some((u) => old.includes(u))).toBe(false);
    expect([stack.cashierToken, stack.managerToken]).toEqual(tokens);
    events.length = 0;
    stack.services.onEvent((e) => events.push(e));
    expect((await stack.services.getOrder(order.combine_out_trade_no)).state).toBe('SUCCESS');
    // The paid order comes back in the relay's first message: that is when a second receipt
    // would be queued (synchronously, as the message is applied).
    await until('snapshot after the restart', () => events.find((e) => e.type === 'snapshot' && e.orders.some((o) => o.combine_out_trade_no === order.combine_out_trade_no)));
    expect(await receiptJobs(order.combine_out_trade_no)).toHaveLength(2); // the original and the reprint, from the job file
    expect(printer.jobs).toHaveLength(4);
  });

  it('a receipt asked for before the payment is known here prints at once (relay asks WeChat Pay), once', async () => {
    const merchants = await stack.services.listMerchants();
    const o = await stack.services.createOrder({ sub_orders: [{ mchid: merchants[0]!.mchid, description: '面', amount: 1200 }, { mchid: merchants[1]!.mchid, description: '茶', amount: 300 }] }, 'smoke-key-0003');
    await printer.waitForJob(4); // its slip
    // Paid without a notification: the terminal (and the relay) have not heard of it yet.
    const res = await fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url: o.code_url, notify: false }) });
    const paid = (await res.json()) as { sub_orders: { transaction_id: string }[] };
    const job = await stack.services.print('receipt', o.combine_out_trade_no);
    expect(job).toMatchObject({ kind: 'receipt', state: 'done', reprint: false });
    const receipt = (await printer.waitForJob(5)).decoded;
    expect(receipt.text).toContain(paid.sub_orders[0]!.transaction_id);
    expect(receipt.text).not.toContain('REPRINT');
    // The relay pushes the SUCCESS its query found: that is when an automatic receipt would start.
    await until('SUCCESS pushed', () => events.some((e) => e.type === 'order.updated' && e.order.combine_out_trade_no === o.combine_out_trade_no && e.order.state === 'SUCCESS'));
    expect(await receiptJobs(o.combine_out_trade_no)).toHaveLength(1); // not a second, automatic receipt as well

    // The screen's button asks with reprint=true when it has seen no receipt yet: still one paper.
    const o2 = await stack.services.createOrder({ sub_orders: [{ mchid: merchants[0]!.mchid, description: '面', amount: 1300 }, { mchid: merchants[1]!.mchid, description: '茶', amount: 400 }] }, 'smoke-key-0004');
    expect((await printer.waitForJob(6)).decoded.qr).toEqual([o2.code_url]);
    await fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url: o2.code_url, notify: false }) });
    expect(await stack.services.print('receipt', o2.combine_out_trade_no, true)).toMatchObject({ kind: 'receipt', state: 'done' });
    await printer.waitForJob(7);
    await until('SUCCESS pushed', () => events.some((e) => e.type === 'order.updated' && e.order.combine_out_trade_no === o2.combine_out_trade_no && e.order.state === 'SUCCESS'));
    expect(await receiptJobs(o2.combine_out_trade_no)).toHaveLength(1);
    expect(printer.jobs).toHaveLength(8);
  });
});
