/** Clock helpers for display: Beijing calendar days (the bills' and takings' day) and countdowns. */
import { useEffect, useState } from 'preact/hooks';

const BEIJING_OFFSET_MS = 8 * 3600_000;

/** yyyy-MM-dd of the Beijing day containing `ms` (default now), whatever the machine's zone. */
export function beijingDate(ms = Date.now()): string {
  return new Date(ms + BEIJING_OFFSET_MS).toISOString().slice(0, 10);
}

/** HH:mm:ss Beijing time of an ISO instant. */
export function beijingTime(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '';
  return new Date(ms + BEIJING_OFFSET_MS).toISOString().slice(11, 19);
}

/** yyyy-MM-dd HH:mm:ss Beijing time: dates always in that order, whatever the language. */
export function beijingDateTime(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '';
  const s = new Date(ms + BEIJING_OFFSET_MS).toISOString();
  return `${s.slice(0, 10)} ${s.slice(11, 19)}`;
}

/** 125 → "2:05"; hours shown when needed. */
export function formatCountdown(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** Current time, re-rendering the caller every `ms`. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}
