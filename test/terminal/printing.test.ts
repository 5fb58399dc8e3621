import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, type StoredSettings } from '../../shared/terminal/settings';
import { renderEscPos, qrModuleSize } from '../../shared/terminal/printing/escpos';
import { buildReceipt } from '../../shared/terminal/printing/receipt';
import { displayWidth } from '../../shared/terminal/printing/document';
import { renderPreview } from '../../shared/terminal/printing/preview';
import { PrintQueue } from '../../shared/terminal/printing/queue';
import { sendToPrinter, PrinterError } from '../../shared/terminal/printing/transport';
import type { PrintJob } from '../../shared/contracts/terminal-api';
import { refusingPrinter, startEscPosCapture, type EscPosCapture } from '../helpers/escpos-capture';
import { CODE_URL, NAMES, paidOrder, sampleOrder } from './fixtures';

let printer: EscPosCapture;
let dir: string;
beforeAll(async () => {
  printer = await startEscPosCapture();
  dir = mkdtempSync(join(tmpdir(), 'pos-print-'));
});
afterAll(async () => {
  await printer.close();
  rmSync(dir, { recursive: true, force: true });
});

const slip = (width: 58 | 80, qrMode: 'native' | 'raster', reprint = false) =>
  renderEscPos(buildReceipt({ kind: 'slip', order: sampleOrder(), merchantNames: NAMES, reprint, width, language: 'zh-CN' }), { qrMode, statusRequest: true });

describe('ESC/POS bytes through a TCP capture printer', () => {
  it('order slip: native QR payload equals code_url, GB18030 text with ¥ and 喆, cut present', async () => {
    const n = printer.jobs.length;
    await sendToPrinter(printer.uri, slip(80, 'native'), { waitForAck: true, timeoutMs: 3000 });
    const job = (await printer.waitForJob(n)).decoded;
    expect(job.qr).toEqual([CODE_URL]);
    expect(job.qrSettings).toEqual({ model: 2, moduleSize: 8, ecLevel: 'M' });
    expect(job.text).toContain('喆喆音像店');
    expect(job.text).toContain('陶喆专辑 CD');
    expect(job.text).toContain('¥99.00');
    expect(job.text).toContain('¥123.45');
    expect(job.text).toContain('有效期至: 2026-11-27 13:00:00');
    expect(job.text).not.toContain('REPRINT');
    expect(job.cut).toBe(true);
    expect(job.init && job.chineseMode).toBe(true);
    expect(job.statusRequests).toBe(1);
    expect(job.unknownCommands).toEqual([]);
    // ¥ (U+00A5) is outside GB2312: GB18030 4-byte form 81 30 84 36 must be on the wire.
    expect(printer.jobs[n]!.bytes.includes(Buffer.from([0x81, 0x30, 0x84, 0x36]))).toBe(true);
    expect(printer.jobs[n]!.bytes.length).toBeLessThanOrEqual(1536);
    // Every printed line fits 48 columns, counting multi-byte GB18030 characters as full width.
    expect(job.lines.filter((l) => displayWidth(l) > 48)).toEqual([]);
    expect(job.lines.find((l) => l.includes('¥123.45'))).toMatch(/^合计 +¥123\.45$/);
  });

  it('raster fallback: the GS v 0 image decodes back to code_url; no native QR command', async () => {
    const n = printer.jobs.length;
    await sendToPrinter(printer.uri, slip(58, 'raster'), { waitForAck: true, timeoutMs: 3000 });
    const job = (await printer.waitForJob(n)).decoded;
    expect(job.qr).toEqual([]);
    expect(job.rasters).toHaveLength(1);
    expect(job.rasters[0]!.qr).toBe(CODE_URL);
    expect(job.rasters[0]!.widthDots).toBeLessThanOrEqual(384);
    expect(job.cut).toBe(true);
  });

  it('module size fits the paper: 58 mm smaller than 80 mm, both within the printable width', () => {
    const s58 = qrModuleSize(CODE_URL, 58);
    const s80 = qrModuleSize(CODE_URL, 80);
    expect(s58).toBeLessThan(s80);
    expect((17 + 4 * 4 + 8) * s58).toBeLessThanOrEqual(384);
    expect((17 + 4 * 4 + 8) * s80).toBeLessThanOrEqual(576);
  });

  it('paid receipt: transaction ids, paid time (Beijing), REPRINT marker on reprints', () => {
    const doc = buildReceipt({ kind: 'receipt', order: paidOrder(), merchantNames: NAMES, reprint: true, width: 58, language: 'zh-CN' });
    const p = renderPreview(doc);
    const text = p.lines.join('\n');
    expect(text).toContain('REPRINT');
    expect(text).toContain('420000123420261127000000001');
    expect(text).toContain('支付时间: 2026-11-27 12:31:05');
    expect(p.qr).toBeNull();
    // 58 mm paper: 32 columns, a Chinese character taking two (counted by display width, not length).
    expect(p.lines.some((l) => /[\u4e00-\u9fff]/.test(l))).toBe(true);
    expect(p.lines.filter((l) => displayWidth(l) > 32)).toEqual([]);
  });

  it('display width counts CJK as two columns (what the line-width checks rely on)', () => {
    expect(displayWidth('陶喆专辑 CD')).toBe(11);
    // ¥ is a multi-byte GB18030 character: the printer gives it a full-width cell.
    expect(displayWidth('¥123.45')).toBe(8);
    const long = buildReceipt({ kind: 'slip', order: sampleOrder({ sub_orders: [{ ...sampleOrder().sub_orders[0]!, description: '特'.repeat(60) }, sampleOrder().sub_orders[1]!] }), merchantNames: NAMES, reprint: false, width: 58, language: 'zh-CN' });
    const lines = renderPreview(long).lines;
    // Wrapped by width: a line of 16 such characters is 32 columns but only 16 UTF-16 units.
    expect(lines.filter((l) => displayWidth(l) > 32)).toEqual([]);
    expect(lines.some((l) => l.includes('特'.repeat(12)))).toBe(true);
  });
});

describe('printer failures and the job queue', () => {
  it('refused: nothing listens on the port (nothing can have printed)', async () => {
    const refusing = await refusingPrinter();
    const err = await sendToPrinter(refusing.uri, slip(80, 'native'), { timeoutMs: 1000 }).catch((e) => e);
    await refusing.release();
    expect(err).toBeInstanceOf(PrinterError);
    expect(err.failure).toBe('refused');
    expect(err.mayHavePrinted).toBe(false);
  });

  it('timeout: the printer takes the connection but never answers; every hung attempt closes its socket', async () => {
    const mute = await startEscPosCapture({ mode: 'mute' });
    for (let i = 0; i < 3; i++) {
      const err = await sendToPrinter(mute.uri, slip(80, 'native'), { timeoutMs: 200, waitForAck: true }).catch((e) => e);
      expect(err).toBeInstanceOf(PrinterError);
      expect(err.failure).toBe('timeout');
      expect(err.mayHavePrinted).toBe(true);
      // The deadline destroyed our socket: the printer sees the connection end (no leak per attempt).
      await mute.waitForIdle(1000);
    }
    expect(mute.connections()).toEqual({ total: 3, open: 0 });
    await mute.close();
  });

  it('offline: the printer answers the status request with the offline bit (cover open / paper out)', async () => {
    const open = await startEscPosCapture({ mode: 'offline' });
    const err = await sendToPrinter(open.uri, slip(80, 'native'), { timeoutMs: 2000, waitForAck: true }).catch((e) => e);
    await open.waitForIdle(1000);
    await open.close();
    expect(err).toBeInstanceOf(PrinterError);
    expect(err.failure).toBe('offline');
    // The bytes are in the printer's buffer: they print once the cover is closed.
    expect(err.mayHavePrinted).toBe(true);
  });

  it('a refused job is kept, shown as failed, retried by itself, and printed once the printer is reachable', async () => {
    const refusing = await refusingPrinter();
    const target = await startEscPosCapture();
    const settings: StoredSettings = { ...DEFAULT_SETTINGS, printer: refusing.uri };
    const path = join(dir, 'jobs.json');
    const q = new PrintQueue({ path, settings: () => settings, retryBaseMs: 100, retryMaxMs: 200, timeoutMs: 1000 });
    const seen: string[] = [];
    const done = new Promise<PrintJob>((ok) => q.on('job', (j) => {
      seen.push(`${j.state}:${j.failure ?? ''}`);
      if (j.state === 'done') ok(j);
    }));
    const first = await q.enqueue('slip', sampleOrder(), NAMES, false);
    expect(first).toMatchObject({ state: 'failed', failure: 'refused' });
    expect(first.message).toMatch(/refused/);
    expect(Date.parse(first.retry_at!)).toBeGreaterThan(Date.parse(first.created_at) - 1);
    // The cashier corrects the printer's address: the queued automatic retry prints the job there.
    settings.printer = target.uri;
    const job = await target.waitForJob(0, 5000);
    expect(job.decoded.qr).toEqual([CODE_URL]);
    expect(job.decoded.text).not.toContain('REPRINT');
    const j = await done;
    expect(j.attempts).toBeGreaterThanOrEqual(2);
    expect(j.retry_at).toBeNull();
    expect(seen).toContain('failed:refused');
    await q.close();
    // Persisted: a new queue over the same file knows the job.
    const q2 = new PrintQueue({ path, settings: () => settings });
    expect(q2.find(sampleOrder().combine_out_trade_no, 'slip')?.state).toBe('done');
    await q2.close();
    await target.close();
    await refusing.release();
  });

  it('after an ambiguous failure (timeout, offline) nothing retries by itself; the cashier\'s retry is marked REPRINT', async () => {
    for (const mode of ['mute', 'offline'] as const) {
      const printer = await startEscPosCapture({ mode });
      const settings: StoredSettings = { ...DEFAULT_SETTINGS, printer: printer.uri };
      const q = new PrintQueue({ settings: () => settings, retryBaseMs: 10, retryMaxMs: 20, timeoutMs: 300 });
      const first = await q.enqueue('slip', sampleOrder(), NAMES, false);
      expect(first).toMatchObject({ state: 'failed', failure: mode === 'mute' ? 'timeout' : 'offline', retry_at: null });
      printer.setMode('ack');
      // A later job goes through the same one-at-a-time queue: had a retry of the first been
      // scheduled (10-20 ms), it would have printed before this one.
      const later = await q.enqueue('receipt', paidOrder(), NAMES, false);
      expect(later.state).toBe('done');
      await printer.waitForJob(1);
      expect(printer.jobs).toHaveLength(2);
      expect(printer.jobs[1]!.decoded.text).toContain('支付成功');
      expect(q.list().find((j) => j.id === first.id)!.attempts).toBe(1);
      const again = await q.retry(first.id);
      expect(again.state).toBe('done');
      const second = await printer.waitForJob(2, 3000);
      expect(second.decoded.qr).toEqual([CODE_URL]);
      expect(second.decoded.text).toContain('REPRINT');
      await q.close();
      await printer.close();
    }
  });

  it('an automatic retry of a slip whose order is paid or closed meanwhile prints nothing', async () => {
    const refusing = await refusingPrinter();
    const target = await startEscPosCapture();
    const settings: StoredSettings = { ...DEFAULT_SETTINGS, printer: refusing.uri };
    let state: 'NOTPAY' | 'SUCCESS' = 'NOTPAY';
    const q = new PrintQueue({ settings: () => settings, retryBaseMs: 50, retryMaxMs: 50, timeoutMs: 1000, wanted: () => state === 'NOTPAY' });
    const dropped = new Promise<PrintJob>((ok) => q.on('job', (j) => { if (/no longer waiting/.test(j.message ?? '')) ok(j); }));
    const first = await q.enqueue('slip', sampleOrder(), NAMES, false);
    expect(first.failure).toBe('refused');
    state = 'SUCCESS';
    settings.printer = target.uri;
    const j = await dropped;
    expect(j).toMatchObject({ state: 'failed', retry_at: null, attempts: 1 });
    expect(target.connections().total).toBe(0);
    await q.close();
    await target.close();
    await refusing.release();
  });

  it('a job interrupted by a stop while printing is not printed again by itself after the restart', async () => {
    const path = join(dir, 'interrupted-jobs.json');
    const order = sampleOrder();
    writeFileSync(path, JSON.stringify([{
      job: { id: 'j1', kind: 'slip', combine_out_trade_no: order.combine_out_trade_no, reprint: false, state: 'printing', attempts: 1, failure: null, message: null, created_at: new Date().toISOString() },
      order, merchantNames: NAMES,
    }]));
    const target = await startEscPosCapture();
    const q = new PrintQueue({ path, settings: () => ({ ...DEFAULT_SETTINGS, printer: target.uri }), retryBaseMs: 10 });
    const [j] = q.list();
    expect(j).toMatchObject({ state: 'failed', failure: 'error', retry_at: null });
    expect(j!.message).toMatch(/interrupted/);
    // A new job prints; the interrupted one was not put before it.
    await q.enqueue('receipt', paidOrder(), NAMES, false);
    expect((await target.waitForJob(0)).decoded.text).toContain('支付成功');
    expect(target.jobs).toHaveLength(1);
    expect((await q.retry('j1')).state).toBe('done');
    expect((await target.waitForJob(1)).decoded.text).toContain('REPRINT');
    await q.close();
    await target.close();
  });

  it('a receipt that cannot be built fails as a job (no rejection, nothing left unhandled)', async () => {
    const logs: string[] = [];
    const q = new PrintQueue({ settings: () => ({ ...DEFAULT_SETTINGS, printer: 'preview' }), log: (m) => logs.push(m) });
    const broken = sampleOrder({ total_amount: 1.5 });
    const j = await q.enqueue('slip', broken, NAMES, false);
    expect(j).toMatchObject({ state: 'failed', failure: 'error' });
    expect(j.message).toMatch(/integer fen/);
    expect(logs.join('\n')).toContain(j.id);
    // The queue goes on.
    expect((await q.enqueue('slip', sampleOrder(), NAMES, false)).state).toBe('done');
    await q.close();
  });

  it('a damaged job file (valid JSON, wrong shape) does not stop the queue from starting', async () => {
    const path = join(dir, 'damaged-jobs.json');
    writeFileSync(path, JSON.stringify([null, 7, { job: null }, { job: { id: 'x' } }]));
    const q = new PrintQueue({ path, settings: () => ({ ...DEFAULT_SETTINGS, printer: 'preview' }) });
    expect(q.list()).toEqual([]);
    const j = await q.enqueue('slip', sampleOrder(), NAMES, false);
    expect(j.state).toBe('done');
    await q.close();
    writeFileSync(path, '{"not":"an array"}');
    const q2 = new PrintQueue({ path, settings: () => DEFAULT_SETTINGS });
    expect(q2.list()).toEqual([]);
    await q2.close();
  });

  it('a typed amount (description = merchant name) prints the name once, with its amount', () => {
    const base = sampleOrder();
    const sub = { ...base.sub_orders[0]!, description: (NAMES as Record<string, string>)[base.sub_orders[0]!.mchid]! };
    const doc = buildReceipt({ kind: 'slip', order: sampleOrder({ sub_orders: [sub, base.sub_orders[1]!] }), merchantNames: NAMES, reprint: false, width: 80, language: 'zh-CN' });
    const text = renderPreview(doc).lines.join('\n');
    expect(text.split(sub.description).length - 1).toBe(1);
    expect(text).toMatch(new RegExp(`${sub.description}.*¥`));
  });

  it('preview printer: job done at once with the rendered lines and QR payload', async () => {
    const q = new PrintQueue({ settings: () => ({ ...DEFAULT_SETTINGS, printer: 'preview', paper_width: 58 }) });
    const j = await q.enqueue('slip', sampleOrder(), NAMES, false);
    expect(j.state).toBe('done');
    expect(j.preview?.qr).toBe(CODE_URL);
    expect(j.preview?.width).toBe(58);
    expect(j.preview?.lines.join('\n')).toContain('¥123.45');
    await q.close();
  });
});
