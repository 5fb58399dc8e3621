/**
 * Yuan strings ↔ integer fen with string arithmetic only: floats never touch money.
 * Bill files carry yuan with 2 decimals (fees with 5); amounts may be negative.
 */
import { BillError } from './errors';

/**
 * Parses `[-]digits[.digits]` into an integer scaled by 10^scale, by character codes (bill
 * parsing calls this millions of times, so no regex). Decimals beyond `scale` must be zeros.
 */
function parseScaled(text: string, scale: number, what: string): number {
  let s = text;
  if (s.length === 0 || s.charCodeAt(0) <= 32 || s.charCodeAt(s.length - 1) <= 32) s = s.trim();
  const len = s.length;
  let i = 0;
  let neg = false;
  if (len > 0 && s.charCodeAt(0) === 45 /* - */) {
    neg = true;
    i = 1;
  }
  const intStart = i;
  let n = 0;
  while (i < len) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
    i++;
  }
  if (i === intStart) throw new BillError('BILL_MALFORMED', `not a ${what}: ${JSON.stringify(text)}`);
  let decimals = 0;
  if (i < len) {
    if (s.charCodeAt(i) !== 46 /* . */ || i === len - 1) throw new BillError('BILL_MALFORMED', `not a ${what}: ${JSON.stringify(text)}`);
    i++;
    while (i < len) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) throw new BillError('BILL_MALFORMED', `not a ${what}: ${JSON.stringify(text)}`);
      if (decimals < scale) {
        n = n * 10 + c;
        decimals++;
      } else if (c !== 0) {
        throw new BillError('BILL_MALFORMED', `${what} has more than ${scale} decimals: ${text}`);
      }
      i++;
    }
  }
  for (; decimals < scale; decimals++) n *= 10;
  // Digits were accumulated exactly while below 2^53; beyond that the value cannot be trusted.
  if (!Number.isSafeInteger(n)) throw new BillError('BILL_MALFORMED', `${what} too large: ${text}`);
  return neg && n !== 0 ? -n : n;
}

/** `"12.50"` → 1250. More than two decimals must be zeros (`"0.10000"` is fine). */
export function yuanToFen(yuan: string): number {
  return parseScaled(yuan, 2, 'yuan amount');
}

/** Fee columns carry 5 decimals of yuan: kept exact in thousandths of a fen. */
export function yuanToMilliFen(yuan: string): number {
  return parseScaled(yuan, 5, 'yuan amount');
}

function formatScaled(value: number, scale: number, what: string): string {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${what} must be a safe integer, got ${value}`);
  const neg = value < 0;
  const s = String(Math.abs(value)).padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${s.slice(0, -scale)}.${s.slice(-scale)}`;
}

/** 1250 → `"12.50"`; -5 → `"-0.05"`. */
export function fenToYuan(fen: number): string {
  return formatScaled(fen, 2, 'fen');
}

/** 23000 → `"0.23000"` (fee columns: 5 decimals of yuan). */
export function milliFenToYuan(milliFen: number): string {
  return formatScaled(milliFen, 5, 'milli-fen');
}
