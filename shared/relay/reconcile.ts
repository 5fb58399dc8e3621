/**
 * The reconciler: follows every non-final order so a lost notification still ends it.
 * After RELAY_QUERY_AFTER_SECONDS without one, an order is queried with exponential backoff
 * until final; expired orders are closed once closing is allowed; on start, orders whose
 * create never finished (crash) are re-sent identically and all others are due at once.
 * Both kinds of sale alike: OrderService queries and closes each through the API of its kind.
 */
import type { Logger } from './log';
import type { OrderService } from './orders';
import type { RelayStore } from './repo-types';
import { RelayError } from './errors';
import { CHECK_LEASE_MS, SEND_LEASE_MS } from './leases';
import { isNotFound } from './upstream';

/** Who the audit log names for the reconciler's automatic closes. */
const AUTO = 'auto';

/** Longest wait between two queries of one order. */
const MAX_BACKOFF_MS = 60_000;
/** Orders checked at once. */
const CONCURRENCY = 4;

export interface ReconcilerOptions {
  closeMinAgeSeconds: number;
  tickMs: number;
}

export class Reconciler {
  private timer: NodeJS.Timeout | null = null;
  private readonly busy = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(
    private readonly store: RelayStore,
    private readonly orders: OrderService,
    private readonly log: Logger,
    private readonly o: ReconcilerOptions,
  ) {}

  async start(): Promise<void> {
    // Creates cut short by a crash: re-send them now (identical body, same numbers). SQLite only:
    // on PostgreSQL another live relay may be sending them, and their lease brings them due.
    await this.store.orders.resumePending();
    this.timer = setInterval(() => this.tick(), this.o.tickMs);
    this.timer.unref();
    this.tick();
  }

  /** Stops scheduling and waits for checks in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.busy.values()]);
  }

  /** One tick at a time; a tick claims (leases) its due orders, so relays never share one. */
  private ticking = false;

  tick(): void {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    this.tickInner()
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'reconcile tick failed'))
      .finally(() => { this.ticking = false; });
  }

  private async tickInner(): Promise<void> {
    const now = Date.now();
    await this.store.orders.unwatchFinal();
    const room = CONCURRENCY - this.busy.size;
    if (room <= 0 || this.stopped) return;
    for (const no of await this.store.orders.claimDue(now, room, CHECK_LEASE_MS)) {
      if (this.busy.has(no) || this.stopped) continue;
      const p = this.check(no)
        .catch((err) => this.log.warn({ order: no, err: (err as Error).message }, 'reconcile check failed'))
        .finally(() => this.busy.delete(no));
      this.busy.set(no, p);
    }
  }

  private backoff(attempts: number): number {
    return Math.min(MAX_BACKOFF_MS, 2000 * 2 ** Math.min(attempts, 10));
  }

  async check(no: string): Promise<void> {
    const row = await this.store.orders.row(no);
    if (!row) return;
    const now = Date.now();
    const next = (ms: number) => this.store.orders.schedule(no, Math.min(now + ms, Math.max(row.expires_ms, now + 1000)));
    if (row.state !== 'NOTPAY' && row.state !== 'USERPAYING') return this.store.orders.unwatch(no);
    if (row.creation === 'PENDING') {
      if (this.orders.inflight.has(no)) return next(this.backoff(0));
      // Several relays: a create this young is still its own relay's (SEND_LEASE_MS).
      if (this.orders.shared && now < row.created_ms + SEND_LEASE_MS) return this.store.orders.schedule(no, row.created_ms + SEND_LEASE_MS);
      await next(this.backoff(row.check_attempts));
      await this.orders.send(no).catch(() => {});
      return;
    }
    const expired = now >= row.expires_ms;
    const closeAt = row.created_ms + this.o.closeMinAgeSeconds * 1000;
    if (expired && now >= closeAt) {
      await next(this.backoff(row.check_attempts));
      // Every close is audited, as a manager's are; the reconciler's under the name `auto`.
      try {
        const after = await this.orders.closeInner(no, true);
        if (after.state === 'CLOSED') await this.store.audit.add(AUTO, 'close', no, { outcome: 'CLOSED', reason: 'expired' });
      } catch (err) {
        if (err instanceof RelayError && err.status === 409) {
          await this.store.audit.add(AUTO, 'close', no, { outcome: err.code, reason: 'expired' });
          return;
        }
        throw err;
      }
      return;
    }
    try {
      const result = await this.queryOrNull(no);
      if (result === null) {
        // WeChat never created it (a failed create): nothing more to follow.
        if (row.creation === 'FAILED') await this.store.orders.unwatch(no);
        else await next(this.backoff(row.check_attempts));
        return;
      }
      await this.orders.applyUpstream(no, result, 'query');
    } finally {
      const after = await this.store.orders.row(no);
      if (after && after.watch === 1 && (after.state === 'NOTPAY' || after.state === 'USERPAYING')) {
        const wait = this.backoff(after.check_attempts);
        // Expired but too young to close: come back when closing is allowed.
        await this.store.orders.schedule(no, expired ? Math.max(closeAt, now + 1000) : Math.min(now + wait, Math.max(row.expires_ms, now + 1000)));
      }
    }
  }

  private async queryOrNull(no: string) {
    try {
      // Combine by the initiator, a single sale with basic Native as its merchant.
      return await this.orders.queryUpstream(no);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
}
