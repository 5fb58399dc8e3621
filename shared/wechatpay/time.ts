/** Times on the wire are Beijing time with an explicit +08:00 offset. */
const OFFSET_MS = 8 * 3600 * 1000;
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `yyyy-MM-ddTHH:mm:ss+08:00` (what `time_expire` must look like). */
export function formatBeijing(date: Date | number): string {
  const d = new Date((typeof date === 'number' ? date : date.getTime()) + OFFSET_MS);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}+08:00`;
}

/** `yyyy-MM-dd HH:mm:ss` in Beijing time (bill files). */
export function formatBeijingBill(date: Date | number): string {
  return formatBeijing(date).slice(0, 19).replace('T', ' ');
}

/** The Beijing calendar day `yyyy-MM-dd` of an instant. */
export function beijingDate(date: Date | number): string {
  return formatBeijing(date).slice(0, 10);
}

/** Parses RFC 3339 leniently (millis optional); NaN-safe: returns null when unparseable. */
export function parseRfc3339(s: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return null;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Parses a bill time `yyyy-MM-dd HH:mm:ss`, taken as Beijing time. */
export function parseBeijingBill(s: string): Date | null {
  return parseRfc3339(s.replace(' ', 'T') + '+08:00');
}

/** True for a real `yyyy-MM-dd` calendar day (2025-02-30 is not: Date would roll it into March). */
export function isCalendarDate(s: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const t = Date.parse(`${s}T12:00:00+08:00`);
  return !Number.isNaN(t) && beijingDate(t) === s;
}
