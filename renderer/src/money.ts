/**
 * Money for display and keypad entry. Integer fen only: strings are split and joined,
 * never divided as floats, so ¥0.10 + ¥0.20 stays exactly ¥0.30.
 */

/** 1250 → "¥12.50"; -5 → "-¥0.05". Groups thousands with commas for readability. */
export function formatFen(fen: number, symbol = '¥'): string {
  if (!Number.isSafeInteger(fen)) return `${symbol}—`;
  const neg = fen < 0;
  const digits = String(Math.abs(fen)).padStart(3, '0');
  const yuan = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}${symbol}${yuan}.${digits.slice(-2)}`;
}

/** Largest amount the keypad accepts for one sub-merchant: ¥999,999.99. */
export const MAX_ENTRY_FEN = 99_999_999;

/**
 * What the keypad has typed so far, e.g. "12.5". Returns null when the key would make it invalid
 * (second dot, third decimal, too large), so the key is simply ignored.
 */
export function pushKey(entry: string, key: string): string | null {
  if (key === '.') {
    if (entry.includes('.')) return null;
    return entry === '' ? '0.' : entry + '.';
  }
  if (key === '00') {
    const once = pushKey(entry, '0');
    return once === null ? null : pushKey(once, '0') ?? once;
  }
  if (!/^[0-9]$/.test(key)) return null;
  const dot = entry.indexOf('.');
  if (dot >= 0 && entry.length - dot - 1 >= 2) return null;
  const next = entry === '0' ? key : entry + key;
  const fen = entryToFen(next);
  if (fen === null || fen > MAX_ENTRY_FEN) return null;
  return next;
}

/** "12.5" → 1250, "" → 0, "0." → 0; null when not a well-formed amount. */
export function entryToFen(entry: string): number | null {
  if (entry === '') return 0;
  const m = /^(\d{1,9})(?:\.(\d{0,2}))?$/.exec(entry);
  if (!m) return null;
  const frac = (m[2] ?? '').padEnd(2, '0');
  return Number(m[1]) * 100 + Number(frac);
}

/** Integer percentage (0–100) of part in whole, for bar widths; no float money involved. */
export function percent(part: number, whole: number): number {
  if (whole <= 0 || part <= 0) return 0;
  return Math.min(100, Math.round((part * 100) / whole));
}
