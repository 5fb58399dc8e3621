/**
 * The printer setup's test page: the store header, which printer and paper width this is, a sample
 * QR (to check the printer draws `GS ( k` or the raster fallback readably) and the date. It never
 * carries a real payment link: the sample QR is plainly not payable.
 */
import type { Language, PaperWidth, QrMode } from '../../contracts/terminal-api';
import type { Block, ReceiptDocument } from './document';
import { beijingDateTime } from './format';
import { storeHeader } from './receipt';

/** The sample QR's payload: recognisable when scanned, not a weixin:// link. */
export const TEST_QR_PAYLOAD = 'POS TEST PRINT / 打印测试';

export interface TestPageInput {
  printer: string;
  width: PaperWidth;
  qrMode: QrMode;
  language: Language;
  storeName: string;
  storeAddress: string;
  now: Date;
}

const LABELS = {
  'zh-CN': { title: '打印测试', printer: '打印机', paper: '纸宽', qr: '二维码方式', date: '时间', ok: '能读到这一页即打印正常', native: '打印机指令', raster: '位图' },
  en: { title: 'TEST PRINT', printer: 'Printer', paper: 'Paper', qr: 'QR mode', date: 'Date', ok: 'If you can read this, printing works', native: 'printer command', raster: 'raster image' },
} as const;

export function buildTestPage(input: TestPageInput): ReceiptDocument {
  const L = LABELS[input.language];
  const b: Block[] = [...storeHeader(input.storeName, input.storeAddress)];
  b.push({ t: 'text', text: L.title, align: 'center', bold: true });
  b.push({ t: 'text', text: `${L.printer}: ${input.printer.replace(/^tcp:\/\//, '')}` });
  b.push({ t: 'text', text: `${L.paper}: ${input.width} mm` });
  b.push({ t: 'text', text: `${L.qr}: ${input.qrMode === 'raster' ? L.raster : L.native}` });
  b.push({ t: 'text', text: `${L.date}: ${beijingDateTime(input.now)}` });
  b.push({ t: 'feed', lines: 1 });
  b.push({ t: 'qr', data: TEST_QR_PAYLOAD });
  b.push({ t: 'text', text: L.ok, align: 'center' });
  return { width: input.width, blocks: b };
}
