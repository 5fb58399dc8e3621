/**
 * A day picker that always reads YYYY-MM-DD. Chromium's native date input formats the day by the
 * browser's locale (11/29/2026 on an en-US machine, whatever `<html lang>` says), so the day is
 * shown and typed in a text field; the native calendar is still one tap away, limited to `max`
 * (today, Beijing) so no future day is offered.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { t } from '../i18n';

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A real calendar day in YYYY-MM-DD (2026-02-30 is not). */
export function isDay(s: string): boolean {
  if (!DAY.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/** The day `n` days after `day` (calendar arithmetic in UTC, so no zone can shift it). */
export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

export function DateField(p: { value: string; max?: string; testid: string; onChange(day: string): void }) {
  const [text, setText] = useState(p.value);
  const native = useRef<HTMLInputElement>(null);
  useEffect(() => setText(p.value), [p.value]);
  const take = (v: string) => {
    setText(v);
    if (isDay(v)) p.onChange(v);
  };
  const shift = (n: number) => {
    if (!isDay(p.value)) return;
    const next = addDays(p.value, n);
    if (!p.max || next <= p.max) p.onChange(next);
  };
  const openPicker = () => {
    const el = native.current as (HTMLInputElement & { showPicker?(): void }) | null;
    try {
      el?.showPicker?.();
    } catch {
      el?.focus();
    }
  };
  return (
    <span class={`date-field ${isDay(text) ? '' : 'bad'}`}>
      <button type="button" class="btn small date-step" aria-label={t('date.prev')} onClick={() => shift(-1)}>‹</button>
      <input type="text" class="date-text" value={text} inputMode="numeric" maxLength={10} placeholder="YYYY-MM-DD" spellcheck={false}
        data-testid={p.testid} data-max={p.max} onInput={(e) => take((e.target as HTMLInputElement).value.trim())} />
      <button type="button" class="btn small date-step" aria-label={t('date.next')} disabled={!!p.max && p.value >= p.max} onClick={() => shift(1)}>›</button>
      <button type="button" class="btn small date-open" onClick={openPicker}>{t('date.calendar')}</button>
      <input ref={native} type="date" class="date-native" tabIndex={-1} aria-hidden="true" value={isDay(p.value) ? p.value : ''} max={p.max}
        data-testid={`${p.testid}-picker`} onInput={(e) => take((e.target as HTMLInputElement).value)} />
    </span>
  );
}
