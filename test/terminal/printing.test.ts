import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../shared/terminal/settings';
import { renderEscPos, qrModuleSize } from '../../shared/terminal/printing/escpos';
import { buildReceipt } from '../../shared/terminal/printing/receipt';
import { displayWidth } from '../../shared/terminal/printing/document';
import { renderPreview } from '../../shared/terminal/printing/preview';
import { PrintQueue } from '../../shared/terminal/printing/queue';
import { sendToPrinter, PrinterError } from '../../shared/terminal/printing/transport';
import type { Settings } from '../../shared/contracts/terminal-api';
import { startEscPosCapture, type EscPosCapture } from '../helpers/escpos-capture';
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
    expect(p.lines.every((l) => l.length <= 32)).toBe(true);
  });
});

describe('printer failures and the job queue', () => {
  it('refused: nothing listens on the port', async () => {
    const gone = await startEscPosCapture();
    const uri = gone.uri;
    await gone.close();
    const err = await sendToPrinter(uri, slip(80, 'native'), { timeoutMs: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(PrinterError);
    expect(err.failure).toBe('refused');
  });

  it('timeout: the printer takes the connection but never answers the status request', async () => {
    const mute = await startEscPosCapture({ mode: 'mute' });
    const err = await sendToPrinter(mute.uri, slip(80, 'native'), { timeoutMs: 300, waitForAck: true }).catch((e) => e);
    await mute.close();
    expect(err).toBeInstanceOf(PrinterError);
    expect(err.failure).toBe('timeout');
  });

  it('offline: the printer answers the status request with the offline bit (cover open / paper out)', async () => {
    const open = await startEscPosCapture({ mode: 'offline' });
    const err = await sendToPrinter(open.uri, slip(80, 'native'), { timeoutMs: 2000, waitForAck: true }).catch((e) => e);
    await open.close();
    expect(err).toBeInstanceOf(PrinterError);
    expect(err.failure).toBe('offline');
  });

  it('a failed job is kept, shown as failed with its classification, and printed when the printer comes back', async () => {
    const probe = await startEscPosCapture();
    const port = probe.port;
    await probe.close();
    const settings: Settings = { ...DEFAULT_SETTINGS, printer: `tcp://127.0.0.1:${port}` };
    const path = join(dir, 'jobs.json');
    const q = new PrintQueue({ path, settings: () => settings, retryBaseMs: 200, retryMaxMs: 400, timeoutMs: 1000 });
    const seen: string[] = [];
    q.on('job', (j) => seen.push(`${j.state}:${j.failure ?? ''}`));
    const first = await q.enqueue('slip', sampleOrder(), NAMES, false);
    expect(first.state).toBe('failed');
    expect(first.failure).toBe('refused');
    expect(first.message).toMatch(/refused/);
    // The printer comes back on the same address: the queued retry prints the job.
    const back = await startEscPosCapture({ port });
    const job = await back.waitForJob(0, 5000);
    expect(job.decoded.qr).toEqual([CODE_URL]);
    await new Promise((r) => setTimeout(r, 50));
    const [j] = q.list();
    expect(j!.state).toBe('done');
    expect(j!.attempts).toBeGreaterThanOrEqual(2);
    expect(seen).toContain('failed:refused');
    await q.close();
    // Persisted: a new queue over the same file knows the job.
    const q2 = new PrintQueue({ path, settings: () => settings });
    expect(q2.find(sampleOrder().combine_out_trade_no, 'slip')?.state).toBe('done');
    await q2.close();
    await back.close();
  });

  it('a job that timed out is not retried by itself (the paper may have come out); a manual retry prints it', async () => {
    const printer = await startEscPosCapture({ mode: 'mute' });
    const settings: Settings = { ...DEFAULT_SETTINGS, printer: printer.uri };
    const q = new PrintQueue({ settings: () => settings, retryBaseMs: 50, retryMaxMs: 100, timeoutMs: 300 });
    const first = await q.enqueue('slip', sampleOrder(), NAMES, false);
    expect(first.state).toBe('failed');
    expect(first.failure).toBe('timeout');
    printer.setMode('ack');
    // Several automatic-retry periods pass: nothing more may reach the printer.
    await new Promise((r) => setTimeout(r, 600));
    expect(printer.jobs).toHaveLength(1);
    expect(q.list()[0]!.attempts).toBe(1);
    const again = await q.retry(first.id);
    expect(again.state).toBe('done');
    const second = await printer.waitForJob(1, 3000);
    expect(second.decoded.qr).toEqual([CODE_URL]);
    await q.close();
    await printer.close();
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
