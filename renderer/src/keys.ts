/**
 * Window key handling that always sees the latest render. A listener re-registered in an effect
 * lags behind state (effects run after paint), so a fast cashier's Enter right after a tap would
 * charge the previous cart; here the listener is registered once and calls the newest handler.
 * It is registered in a layout effect (run with the render's DOM changes, before paint): a screen
 * that has just appeared already hears its keys — an Esc pressed the moment an order view shows
 * would otherwise reach neither that view (not listening yet) nor the screen behind it.
 */
import { useLayoutEffect, useRef } from 'preact/hooks';

export function useKeys(handler: (e: KeyboardEvent) => void): void {
  const latest = useRef(handler);
  latest.current = handler;
  useLayoutEffect(() => {
    const fn = (e: KeyboardEvent) => latest.current(e);
    window.addEventListener('keydown', fn);
    return () => window.removeEventListener('keydown', fn);
  }, []);
}

/** True when the key goes to a form field, where digits and Enter mean typing, not the till. */
export function isTyping(e: KeyboardEvent): boolean {
  const el = e.target as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'SELECT' || el.tagName === 'TEXTAREA');
}
