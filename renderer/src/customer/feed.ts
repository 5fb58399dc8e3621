/**
 * Where the customer display's view comes from: Electron's customer preload (`window.posCustomer`),
 * or the web host's customer-only stream `GET /api/customer/events` (its session cookie). Nothing
 * else of the terminal API is reachable from this page.
 */
import type { CustomerPreloadApi, CustomerView } from '../../../shared/contracts/terminal-api';
import { readSseData } from '../sse';

declare global {
  interface Window {
    posCustomer?: CustomerPreloadApi;
  }
}

export type FeedStatus = 'live' | 'reconnecting' | 'expired';

/** Calls `onView` with each view; `onStatus` when the stream drops, comes back or is refused. Returns a stop function. */
export function subscribe(onView: (v: CustomerView) => void, onStatus: (s: FeedStatus) => void): () => void {
  const electron = window.posCustomer;
  if (electron) {
    const off = electron.onView(onView);
    electron.current().then(onView, () => onStatus('expired'));
    return off;
  }
  const stop = new AbortController();
  void (async () => {
    let backoff = 250;
    while (!stop.signal.aborted) {
      try {
        const res = await fetch('/api/customer/events', { headers: { Accept: 'text/event-stream' }, credentials: 'same-origin', signal: stop.signal });
        if (res.status === 401) return onStatus('expired');
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        backoff = 250;
        onStatus('live');
        await readSseData(res.body, (data) => {
          try {
            onView(JSON.parse(data) as CustomerView);
          } catch {
            // a damaged frame: the next one carries the whole view again
          }
        });
      } catch {
        // dropped: reconnect below
      }
      if (stop.signal.aborted) return;
      onStatus('reconnecting');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  })();
  return () => stop.abort();
}
