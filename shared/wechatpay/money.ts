/**
 * Yuan strings ↔ integer fen with string arithmetic only: floats never touch money.
 * Bill files carry yuan with 2 decimals (fees with 5); amounts may be negative.
 */
import { BillError } from './errors';

const YUAN = /^(-?)(\d+)(?:\.(\d+))?$/;

/** `"12.50"` → 1250. More than two decimals must be zeros (a fee column is not money owed). */
export function yuanToFen(yuan: string): number {
  const m = YUAN.exec(yuan.trim());
  if (!m) throw new BillError('BILL_MALFORMED', `not a yuan amount: ${JSON.stringify(yuan)}`);
  const [, sign, int, frac = ''] = m;
  if (/[1-9]/.test(frac.slice(2))) throw new BillError('BILL_MALFORMED', `amount has fractions of a fen: ${yuan}`);
  const digits = (int!.replace(/^0+(?=\d)/, '') + (frac + '00').slice(0, 2)).replace(/^0+(?=\d)/, '');
  const n = Number(digits);
  if (!Number.isSafeInteger(n)) throw new BillError('BILL_MALFORMED', `amount too large: ${yuan}`);
  return sign && n !== 0 ? -n : n;
}

/** 1250 → `"12.50"`; -5 → `"-0.05"`. */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen)) throw new RangeError(`fen must be a safe integer, got ${fen}`);
  const neg = fen < 0;
  const s = String(Math.abs(fen)).padStart(3, '0');
  return `${neg ? '-' : ''}${s.slice(0, -2)}.${s.slice(-2)}`;
}

/** Fee columns carry 5 decimals of yuan: kept exact in thousandths of a fen. */
export function yuanToMilliFen(yuan: string): number {
  const m = YUAN.exec(yuan.trim());
  if (!m) throw new BillError('BILL_MALFORMED', `not a yuan amount: ${JSON.stringify(yuan)}`);
  const [, sign, int, frac = ''] = m;
  if (frac.length > 5 && /[1-9]/.test(frac.slice(5))) throw new BillError('BILL_MALFORMED', `too many decimals: ${yuan}`);
  const n = Number(int!.replace(/^0+(?=\d)/, '') + (frac + '00000').slice(0, 5));
  if (!Number.isSafeInteger(n)) throw new BillError('BILL_MALFORMED', `amount too large: ${yuan}`);
  return sign && n !== 0 ? -n : n;
}
