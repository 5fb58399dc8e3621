/**
 * A receipt as a printer-neutral list of blocks. The same document becomes ESC/POS bytes
 * (escpos.ts) or on-screen preview lines (preview.ts), so the preview shows what paper would.
 */
import type { PaperWidth } from '../../contracts/terminal-api';

export type Align = 'left' | 'center' | 'right';

export type Block =
  | { t: 'text'; text: string; align?: Align; bold?: boolean; big?: boolean }
  /** Left text and right text on one line, padded to the paper's columns. */
  | { t: 'pair'; left: string; right: string; bold?: boolean }
  | { t: 'rule' }
  | { t: 'qr'; data: string }
  | { t: 'feed'; lines: number };

export interface ReceiptDocument {
  width: PaperWidth;
  blocks: Block[];
}

/** Characters per line in font A (12×24 dots): 384 dots on 58 mm, 576 dots on 80 mm. */
export function columnsFor(width: PaperWidth): number {
  return width === 58 ? 32 : 48;
}

/** Printable width in dots at 203 dpi. */
export function dotsFor(width: PaperWidth): number {
  return width === 58 ? 384 : 576;
}

/**
 * Printed columns of a string. In Chinese mode (FS &) the printer draws every multi-byte GB18030
 * character (hanzi, but also ¥, ×, ·) as a full-width 24-dot glyph, and ASCII as 12 dots.
 */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += ch.codePointAt(0)! < 0x80 ? 1 : 2;
  return w;
}

/** Cuts a string to at most `cols` display columns. */
export function clip(s: string, cols: number): string {
  let out = '';
  let w = 0;
  for (const ch of s) {
    const cw = displayWidth(ch);
    if (w + cw > cols) break;
    out += ch;
    w += cw;
  }
  return out;
}

/** Wraps by display width (no word breaking: receipts mix CJK and order numbers). */
export function wrap(s: string, cols: number): string[] {
  const lines: string[] = [];
  let cur = '';
  let w = 0;
  for (const ch of s) {
    const cw = displayWidth(ch);
    if (w + cw > cols) {
      lines.push(cur);
      cur = '';
      w = 0;
    }
    cur += ch;
    w += cw;
  }
  if (cur || lines.length === 0) lines.push(cur);
  return lines;
}

/** `left ..... right` on one line; when both do not fit, right goes on its own right-aligned line. */
export function pairLines(left: string, right: string, cols: number): string[] {
  const lw = displayWidth(left);
  const rw = displayWidth(right);
  if (lw + 1 + rw <= cols) return [left + ' '.repeat(cols - lw - rw) + right];
  return [...wrap(left, cols), ' '.repeat(Math.max(0, cols - rw)) + right];
}

export function alignLine(s: string, align: Align, cols: number): string {
  const w = displayWidth(s);
  if (align === 'left' || w >= cols) return s;
  const pad = align === 'center' ? Math.floor((cols - w) / 2) : cols - w;
  return ' '.repeat(pad) + s;
}
