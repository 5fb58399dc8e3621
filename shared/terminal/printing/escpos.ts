/**
 * Raw ESC/POS bytes for a ReceiptDocument. Text is encoded as GB18030 with iconv-lite and sent
 * raw with the printer in Chinese mode (FS &): node-thermal-printer's CHINA character set maps to
 * GB2312 only and silently switches code pages for characters outside it (¥, 喆), so it is never used.
 * The QR uses the printer's native `GS ( k` (model 2, error correction M); `raster` mode draws the
 * same matrix as a `GS v 0` bit image for printers without the QR command.
 */
import iconv from 'iconv-lite';
import QRCode from 'qrcode';
import type { PaperWidth, QrMode } from '../../contracts/terminal-api';
import { columnsFor, dotsFor, pairLines, wrap, type Align, type ReceiptDocument } from './document';

const ESC = 0x1b;
const GS = 0x1d;
const FS = 0x1c;

export const CMD = {
  init: Buffer.from([ESC, 0x40]),
  /** FS &: enter Chinese (double-byte) character mode so GB18030 bytes print as hanzi. */
  chineseOn: Buffer.from([FS, 0x26]),
  alignLeft: Buffer.from([ESC, 0x61, 0]),
  alignCenter: Buffer.from([ESC, 0x61, 1]),
  alignRight: Buffer.from([ESC, 0x61, 2]),
  boldOn: Buffer.from([ESC, 0x45, 1]),
  boldOff: Buffer.from([ESC, 0x45, 0]),
  /** GS ! n: double width and height. */
  sizeBig: Buffer.from([GS, 0x21, 0x11]),
  sizeNormal: Buffer.from([GS, 0x21, 0x00]),
  lf: Buffer.from([0x0a]),
  /** GS V 66 n: feed n lines to the cutter, then partial cut. */
  feedCut: Buffer.from([GS, 0x56, 66, 3]),
  /** DLE EOT 1: real-time printer status; the printer answers one byte (used as the job's ack). */
  statusRequest: Buffer.from([0x10, 0x04, 0x01]),
} as const;

export function encodeText(s: string): Buffer {
  return iconv.encode(s, 'gb18030');
}

/** Byte-mode capacity of QR versions 1..15 at error correction M (ISO/IEC 18004 table 7). */
const BYTE_CAPACITY_M = [14, 26, 42, 62, 84, 106, 122, 152, 180, 213, 251, 287, 331, 362, 412];

/** Smallest QR version holding `bytes` at level M (code_url is ~40-70 bytes: version 3-5). */
export function qrVersionFor(bytes: number): number {
  const i = BYTE_CAPACITY_M.findIndex((c) => c >= bytes);
  return i < 0 ? 40 : i + 1;
}

/**
 * Module size in dots: modules of ≥0.375 mm (3 dots) and a code ≥ ~25 mm wide, capped so the
 * code plus its 4-module quiet zones fits the paper (58 mm: 384 dots, 80 mm: 576 dots).
 */
export function qrModuleSize(data: string, width: PaperWidth): number {
  const modules = 17 + 4 * qrVersionFor(Buffer.byteLength(data, 'utf8')) + 8;
  const fit = Math.floor(dotsFor(width) / modules);
  const preferred = width === 58 ? 6 : 8;
  return Math.max(1, Math.min(preferred, fit, 16));
}

function gsk(fn: number, ...params: number[]): Buffer {
  const len = params.length + 2;
  return Buffer.from([GS, 0x28, 0x6b, len & 0xff, len >> 8, 0x31, fn, ...params]);
}

export function nativeQr(data: string, moduleSize: number): Buffer {
  const payload = Buffer.from(data, 'utf8');
  const storeLen = payload.length + 3;
  return Buffer.concat([
    gsk(0x41, 0x32, 0x00), // fn 165: model 2
    gsk(0x43, moduleSize), // fn 167: module size
    gsk(0x45, 0x31), // fn 169: error correction M
    Buffer.from([GS, 0x28, 0x6b, storeLen & 0xff, storeLen >> 8, 0x31, 0x50, 0x30]), payload, // fn 180: store
    gsk(0x51, 0x30), // fn 181: print
  ]);
}

/** The QR as a `GS v 0` raster image (quiet zone included), for printers without `GS ( k`. */
export function rasterQr(data: string, moduleSize: number): Buffer {
  const qr = QRCode.create(data, { errorCorrectionLevel: 'M' });
  const n = qr.modules.size;
  const quiet = 4;
  const dots = (n + 2 * quiet) * moduleSize;
  const bytesPerRow = Math.ceil(dots / 8);
  const img = Buffer.alloc(bytesPerRow * dots);
  for (let y = 0; y < dots; y++) {
    const my = Math.floor(y / moduleSize) - quiet;
    if (my < 0 || my >= n) continue;
    for (let x = 0; x < dots; x++) {
      const mx = Math.floor(x / moduleSize) - quiet;
      if (mx < 0 || mx >= n) continue;
      if (qr.modules.get(my, mx)) img[y * bytesPerRow + (x >> 3)] |= 0x80 >> (x & 7);
    }
  }
  return Buffer.concat([Buffer.from([GS, 0x76, 0x30, 0, bytesPerRow & 0xff, bytesPerRow >> 8, dots & 0xff, dots >> 8]), img]);
}

const alignCmd = (a: Align): Buffer => (a === 'center' ? CMD.alignCenter : a === 'right' ? CMD.alignRight : CMD.alignLeft);

export interface EscPosOptions {
  qrMode: QrMode;
  /** Append DLE EOT 1 so the printer answers when it has taken the job. */
  statusRequest?: boolean;
}

export function renderEscPos(doc: ReceiptDocument, opts: EscPosOptions): Buffer {
  const cols = columnsFor(doc.width);
  const out: Buffer[] = [CMD.init, CMD.chineseOn];
  for (const b of doc.blocks) {
    switch (b.t) {
      case 'text': {
        // Big text is double width: half the columns per line.
        const c = b.big ? Math.floor(cols / 2) : cols;
        out.push(alignCmd(b.align ?? 'left'));
        if (b.bold) out.push(CMD.boldOn);
        if (b.big) out.push(CMD.sizeBig);
        for (const line of wrap(b.text, c)) out.push(encodeText(line), CMD.lf);
        if (b.big) out.push(CMD.sizeNormal);
        if (b.bold) out.push(CMD.boldOff);
        out.push(CMD.alignLeft);
        break;
      }
      case 'pair':
        if (b.bold) out.push(CMD.boldOn);
        for (const line of pairLines(b.left, b.right, cols)) out.push(encodeText(line), CMD.lf);
        if (b.bold) out.push(CMD.boldOff);
        break;
      case 'rule':
        out.push(encodeText('-'.repeat(cols)), CMD.lf);
        break;
      case 'qr': {
        const size = qrModuleSize(b.data, doc.width);
        out.push(CMD.alignCenter, opts.qrMode === 'raster' ? rasterQr(b.data, size) : nativeQr(b.data, size), CMD.lf, CMD.alignLeft);
        break;
      }
      case 'feed':
        for (let i = 0; i < b.lines; i++) out.push(CMD.lf);
        break;
    }
  }
  out.push(CMD.feedCut);
  if (opts.statusRequest) out.push(CMD.statusRequest);
  return Buffer.concat(out);
}

