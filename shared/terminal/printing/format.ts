/**
 * Display formats of the receipts: yuan from integer fen by string arithmetic (never floats),
 * and Beijing wall-clock time whatever the counter PC's time zone.
 */

/** 1250 → `"12.50"`; -5 → `"-0.05"`. */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen)) throw new RangeError(`amount must be integer fen, got ${fen}`);
  const digits = String(Math.abs(fen)).padStart(3, '0');
  return `${fen < 0 ? '-' : ''}${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

const BEIJING_OFFSET_MS = 8 * 3600_000; // China has no daylight saving time
const pad = (n: number) => String(n).padStart(2, '0');

/** `yyyy-MM-dd HH:mm:ss` in Beijing time. */
export function beijingDateTime(date: Date | number): string {
  const d = new Date((typeof date === 'number' ? date : date.getTime()) + BEIJING_OFFSET_MS);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** An ISO timestamp in Beijing time; `-` when absent, the text itself when it is not a date. */
export function isoBeijingDateTime(iso: string | null): string {
  if (!iso) return '-';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : beijingDateTime(d);
}
