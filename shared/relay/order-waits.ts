/**
 * Waiting for an order's next change on the change feed: a retried create or refund whose first
 * attempt another relay is still sending (PostgreSQL) waits for that relay's outcome — its change
 * reaches every relay's feed — but never longer than the sender's lease.
 */
import type { ChangeFeed } from './repo-types';

export class OrderWaits {
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(feed: Pick<ChangeFeed, 'onChange'>) {
    feed.onChange((c) => {
      // Nobody waits (nearly always): the change's order is not even looked at (built lazily).
      if (this.waiting.size === 0) return;
      const no = c.order.combine_out_trade_no;
      const list = this.waiting.get(no);
      if (!list) return;
      this.waiting.delete(no);
      for (const wake of list) wake();
    });
  }

  /** Resolves at order `no`'s next change, or after `ms` (then the waiter is forgotten). */
  next(no: string, ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const rest = (this.waiting.get(no) ?? []).filter((f) => f !== wake);
        if (rest.length) this.waiting.set(no, rest);
        else this.waiting.delete(no);
        resolve();
      }, ms);
      const list = this.waiting.get(no) ?? [];
      list.push(wake);
      this.waiting.set(no, list);
    });
  }
}
