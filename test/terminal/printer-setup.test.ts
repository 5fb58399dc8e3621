/**
 * Printer setup: the test page's bytes at the ESC/POS capture printer (store, printer address,
 * paper width, a readable sample QR, the date), the printer's real-time status (online, offline,
 * paper out, no answer, refused, preview), the store header and cashier on real slips and
 * receipts, and a slip job left unfinished by a restart whose order was paid meanwhile: not printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrintJob, TerminalEvent } from '../../shared/contracts/terminal-api';
import { beijingDateTime } from '../../shared/terminal/printing/format';
import { startTerminalServices } from '../../shared/terminal/services';
import { TEST_QR_PAYLOAD } from '../../shared/terminal/printing/test-page';
import { refusingPrinter, startEscPosCapture, type EscPosCapture } from '../helpers/escpos-capture';
import { startStack, type Stack } from '../helpers/stack';
import { until } from './fixtures';

/**
 * A printer that answers DLE EOT 1 with the offline bit and DLE EOT 4 with the roll-paper-end
 * bits (a real printer out of paper). The capture printer answers DLE EOT 1 only.
 */
async function paperOutPrinter(): Promise<{ uri: string; asked: number[]; close(): Promise<void> }> {
  const asked: number[] = [];
  const socks = new Set<Socket>();
  const server: Server = createServer((s) => {
    socks.add(s);
    s.on('error', () => undefined);
    s.on('close', () => socks.delete(s));
    s.on('data', (d) => {
      for (let i = 0; i + 2 < d.length; i++) {
        if (d[i] === 0x10 && d[i + 1] === 0x04) {
          const n = d[i + 2]!;
          asked.push(n);
          // n=1: 0x1e offline (fixed bits 1,2,4 + bit 3); n=4: 0x7e paper near end and end (bits 2-3, 5-6) + fixed bits 1,4.
          s.write(Buffer.from([n === 1 ? 0x1e : 0x7e]));
        }
      }
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    uri: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`,
    asked,
    close: () => new Promise<void>((ok) => { for (const s of socks) s.destroy(); server.close(() => ok()); }),
  };
}

describe('test print and printer status', () => {
  let printer: EscPosCapture;
  let stack: Stack;
  beforeAll(async () => {
    printer = await startEscPosCapture();
    stack = await startStack({ printer: printer.uri, services: { printTimeoutMs: 1_000 } });
    await stack.services.saveSettings({ store_name: '老王面馆', store_address: '上海市静安区南京西路 1 号', cashier_name: '小李' });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await printer?.close();
  });

  it('prints a test page: store, printer address, paper width, a sample QR and the date', async () => {
    const before = Date.now();
    const r = await stack.services.testPrint();
    expect(r).toEqual({ printer: printer.uri, ok: true, failure: null, message: null });
    const job = (await printer.waitForJob(0)).decoded;
    expect(job.init && job.chineseMode && job.cut).toBe(true);
    expect(job.unknownCommands).toEqual([]);
    expect(job.lines.some((l) => l.trim() === '老王面馆')).toBe(true);
    expect(job.text).toContain('上海市静安区南京西路 1 号');
    expect(job.text).toContain('打印测试');
    expect(job.text).toContain(`打印机: 127.0.0.1:${printer.port}`);
    expect(job.text).toContain('纸宽: 80 mm');
    expect(job.qr).toEqual([TEST_QR_PAYLOAD]);
    expect(job.text).toContain(beijingDateTime(before).slice(0, 10));
    expect(job.statusRequests).toBe(1);
    // A test page is not a print job: nothing in the queue, nothing to retry.
    expect(await stack.services.printJobs()).toEqual([]);
  });

  it('a raster-mode 58 mm test page draws a QR that decodes to the sample', async () => {
    await stack.services.saveSettings({ qr_mode: 'raster', paper_width: 58, language: 'en' });
    expect((await stack.services.testPrint()).ok).toBe(true);
    const job = (await printer.waitForJob(1)).decoded;
    expect(job.qr).toEqual([]);
    expect(job.rasters.map((r) => r.qr)).toEqual([TEST_QR_PAYLOAD]);
    expect(job.rasters[0]!.widthDots).toBeLessThanOrEqual(384);
    expect(job.text).toContain('TEST PRINT');
    expect(job.text).toContain('Paper: 58 mm');
    await stack.services.saveSettings({ qr_mode: 'native', paper_width: 80, language: 'zh-CN' });
  });

  it('status: online, offline (cover), paper out, no answer, refused, preview', async () => {
    printer.setMode('ack');
    expect(await stack.services.printerStatus()).toMatchObject({ printer: printer.uri, state: 'online', raw: [0x16], message: null });
    printer.setMode('mute');
    const mute = await stack.services.printerStatus();
    expect(mute).toMatchObject({ state: 'timeout', raw: [] });
    expect(mute.message).toMatch(/did not answer/);
    printer.setMode('ack');

    const paperOut = await paperOutPrinter();
    try {
      await stack.services.saveSettings({ printer: paperOut.uri });
      const s = await stack.services.printerStatus();
      expect(s).toMatchObject({ state: 'paper-out', raw: [0x1e, 0x7e] });
      expect(paperOut.asked).toEqual([1, 4]);
    } finally {
      await paperOut.close();
    }

    const refusing = await refusingPrinter();
    try {
      await stack.services.saveSettings({ printer: refusing.uri });
      const s = await stack.services.printerStatus();
      expect(s.state).toBe('unreachable');
      expect(s.message).toMatch(/refused/);
      // The test page says the same, without throwing.
      expect(await stack.services.testPrint()).toMatchObject({ ok: false, failure: 'refused' });
    } finally {
      await refusing.release();
    }

    await stack.services.saveSettings({ printer: 'preview' });
    expect(await stack.services.printerStatus()).toMatchObject({ printer: 'preview', state: 'preview' });
    const preview = await stack.services.testPrint();
    expect(preview).toMatchObject({ printer: 'preview', ok: true });
    expect(preview.preview!.qr).toBe(TEST_QR_PAYLOAD);
    expect(preview.preview!.lines.join('\n')).toContain('老王面馆');
    await stack.services.saveSettings({ printer: printer.uri });
  });

  it('an offline printer (capture in offline mode) is reported offline', async () => {
    printer.setMode('offline');
    try {
      const s = await stack.services.printerStatus();
      expect(s.state).toBe('offline');
      expect(s.raw[0]).toBe(0x1e);
    } finally {
      printer.setMode('ack');
    }
  });

  it('slips and receipts carry the store name and address; the paid receipt names the cashier', async () => {
    const m = await stack.services.listMerchants();
    const n = printer.jobs.length;
    const o = await stack.services.createOrder({ sub_orders: [{ mchid: m[0]!.mchid, description: '牛肉面', amount: 1800 }, { mchid: m[1]!.mchid, description: '奶茶', amount: 700 }] }, 'printer-setup-0001');
    const slip = (await printer.waitForJob(n)).decoded;
    expect(slip.qr).toEqual([o.code_url]);
    expect(slip.lines.slice(0, 3).map((l) => l.trim())).toEqual(['老王面馆', '上海市静安区南京西路 1 号', '-'.repeat(48)]);
    expect(slip.text).not.toContain('收银员');
    expect((await fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url: o.code_url }) })).status).toBe(200);
    const receipt = (await printer.waitForJob(n + 1)).decoded;
    expect(receipt.text).toContain('支付成功');
    expect(receipt.lines.slice(0, 2).map((l) => l.trim())).toEqual(['老王面馆', '上海市静安区南京西路 1 号']);
    expect(receipt.text).toContain('收银员: 小李');
  });
});

describe('a slip left unfinished by a restart, its order paid meanwhile', () => {
  let dir: string;
  let stack: Stack | null = null;
  let printer: EscPosCapture | null = null;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'pos-slip-restart-')); });
  afterAll(async () => {
    await stack?.close();
    await printer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not printed by itself after a restart, relay unreachable (state unknown) or reachable (paid), while the unprinted paid receipt is', async () => {
    // First run: the printer refuses (nothing reached it: an automatic retry is due later).
    const refusing = await refusingPrinter();
    let no: string;
    try {
      stack = await startStack({ dir, printer: refusing.uri, services: { printRetryBaseMs: 600_000 } });
      const m = await stack.services.listMerchants();
      const o = await stack.services.createOrder({ sub_orders: [{ mchid: m[0]!.mchid, description: '面', amount: 1200 }, { mchid: m[1]!.mchid, description: '茶', amount: 300 }] }, 'slip-restart-0001');
      no = o.combine_out_trade_no;
      const slipFailed = (jobs: PrintJob[]) => jobs.find((j) => j.kind === 'slip' && j.combine_out_trade_no === no && j.state === 'failed' && j.failure === 'refused' && j.retry_at);
      await until('slip refused, retry due', async () => slipFailed(await stack!.services.printJobs()));
      expect((await fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url: o.code_url }) })).status).toBe(200);
      // The paid receipt is tried too, and refused: both jobs are unfinished when the app stops.
      await until('receipt refused', async () => (await stack!.services.printJobs()).find((j) => j.kind === 'receipt' && j.state === 'failed'));
      await stack.close();
      stack = null;
    } finally {
      await refusing.release();
    }

    // Second run: a working printer, but the relay cannot be reached (it is not started; its
    // address refuses). The order's state is unknown: the slip must not print; the receipt does.
    printer = await startEscPosCapture();
    const deadRelay = await refusingPrinter();
    try {
      const services = await startTerminalServices({
        userDataDir: join(dir, 'terminal'),
        settingsOverrides: { relay_url: deadRelay.uri.replace('tcp://', 'http://'), printer: printer.uri },
      });
      try {
        const receipt = (await printer.waitForJob(0)).decoded;
        expect(receipt.text).toContain('支付成功');
        const slip = await until('the slip retry decided', async () => (await services.printJobs()).find((j) => j.kind === 'slip' && /not retried/.test(j.message ?? '')));
        expect(slip).toMatchObject({ state: 'failed', attempts: 1 });
      } finally {
        await services.close();
      }
    } finally {
      await deadRelay.release();
    }
    await printer.waitForIdle();
    expect(printer.jobs.map((j) => j.decoded.qr.length)).toEqual([0]);

    // Third run, the whole stack: the relay answers (paid), so the slip still does not print, and
    // the receipt, done, is not printed twice.
    const seen: TerminalEvent[] = [];
    stack = await startStack({ dir, printer: printer.uri });
    stack.services.onEvent((e) => seen.push(e));
    await until('the slip retry decided again', () => seen.find((e) => e.type === 'print.job' && e.job.kind === 'slip' && e.job.combine_out_trade_no === no));
    await printer.waitForIdle();
    expect(printer.jobs).toHaveLength(1);
    expect(await stack.services.getOrder(no)).toMatchObject({ state: 'SUCCESS' });
  });
});
