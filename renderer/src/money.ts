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

/** Why a keypad key was not taken: shown to the cashier, never silently dropped. */
export type KeyRefusal = 'SECOND_DOT' | 'DECIMALS' | 'TOO_LARGE' | 'NOT_A_KEY';

export type KeyResult = { ok: true; entry: string } | { ok: false; reason: KeyRefusal };

/**
 * What the keypad has typed so far, e.g. "12.5", after one more key; or why the key is refused
 * (second dot, third decimal, above the largest amount), so the screen can say so.
 */
export function applyKey(entry: string, key: string): KeyResult {
  if (key === '.') {
    if (entry.includes('.')) return { ok: false, reason: 'SECOND_DOT' };
    return { ok: true, entry: entry === '' ? '0.' : entry + '.' };
  }
  if (key === '00') {
    const once = applyKey(entry, '0');
    if (!once.ok) return once;
    const twice = applyKey(once.entry, '0');
    return twice.ok ? twice : once;
  }
  if (!/^[0-9]$/.test(key)) return { ok: false, reason: 'NOT_A_KEY' };
  const dot = entry.indexOf('.');
  if (dot >= 0 && entry.length - dot - 1 >= 2) return { ok: false, reason: 'DECIMALS' };
  const next = entry === '0' ? key : entry + key;
  const fen = entryToFen(next);
  if (fen === null || fen > MAX_ENTRY_FEN) return { ok: false, reason: 'TOO_LARGE' };
  return { ok: true, entry: next };
}

/** `applyKey` for callers that only need the new text: null when the key is refused. */
export function pushKey(entry: string, key: string): string | null {
  const r = applyKey(entry, key);
  return r.ok ? r.entry : null;
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
