/** The "preview" printer: the same ReceiptDocument as lines of text plus the QR payload. */
import type { ReceiptPreview } from '../../contracts/terminal-api';
import { alignLine, columnsFor, pairLines, wrap, type ReceiptDocument } from './document';

export function renderPreview(doc: ReceiptDocument): ReceiptPreview {
  const cols = columnsFor(doc.width);
  const lines: string[] = [];
  let qr: string | null = null;
  for (const b of doc.blocks) {
    switch (b.t) {
      case 'text':
        for (const l of wrap(b.text, cols)) lines.push(alignLine(l, b.align ?? 'left', cols));
        break;
      case 'pair':
        lines.push(...pairLines(b.left, b.right, cols));
        break;
      case 'rule':
        lines.push('-'.repeat(cols));
        break;
      case 'qr':
        qr = b.data;
        lines.push(alignLine('[QR]', 'center', cols));
        break;
      case 'feed':
        for (let i = 0; i < b.lines; i++) lines.push('');
        break;
    }
  }
  return { lines, qr, width: doc.width };
}
