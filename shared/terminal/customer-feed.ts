/**
 * The customer display's feed: what the customer facing screen shows, derived from the one order
 * the cashier presents (`presentOrder`) and that order's pushed updates. Only a CustomerView ever
 * leaves this module — an amount, a QR payload, an expiry, the store's name and logo — never the
 * order number list, merchants, tokens or settings.
 *
 * Phases: idle (store name/logo) → waiting (amount + QR) → paid ("thank you" for `thanksMs`, then
 * idle) or failed (closed / PAYERROR / QR expired, shown for `thanksMs`, then idle).
 */
import { EventEmitter } from 'node:events';
import type { Order } from '../contracts/relay-api';
import type { CustomerView, Language } from '../contracts/terminal-api';

export interface CustomerFeedOptions {
  /** The settings the display shows (read each time a view is built, so a save shows at once). */
  settings: () => { store_name: string; store_logo: string; language: Language };
  /** How long "paid" / "failed" stays before idle (default 6 s). */
  thanksMs?: number;
  now?: () => number;
}

type Ending = { phase: 'paid' | 'failed'; reason?: CustomerView['reason']; amount: number };

export class CustomerFeed {
  private readonly bus = new EventEmitter<{ view: [CustomerView] }>();
  /** The order being shown while it waits for payment (null = idle). */
  private order: Order | null = null;
  /** The "paid"/"failed" screen of the order just followed, until its timer ends it. */
  private ending: Ending | null = null;
  /** Orders whose ending was already shown: presenting them again (order detail) shows idle. */
  private readonly ended = new Set<string>();
  private endTimer: NodeJS.Timeout | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private last = '';

  constructor(private readonly opts: CustomerFeedOptions) {}

  onView(listener: (v: CustomerView) => void): () => void {
    this.bus.on('view', listener);
    return () => this.bus.off('view', listener);
  }

  view(): CustomerView {
    const s = this.opts.settings();
    const base: CustomerView = { phase: 'idle', store_name: s.store_name, store_logo: s.store_logo, language: s.language };
    if (this.ending) {
      return this.ending.reason
        ? { ...base, phase: this.ending.phase, amount: this.ending.amount, reason: this.ending.reason }
        : { ...base, phase: this.ending.phase, amount: this.ending.amount };
    }
    const o = this.order;
    if (!o || !o.code_url) return base;
    return { ...base, phase: 'waiting', amount: o.total_amount, code_url: o.code_url, expires_at: o.expires_at };
  }

  /** The cashier's screen now shows `order` (null: no order, e.g. a new sale being rung up). */
  present(order: Order | null): void {
    if (order && this.order?.combine_out_trade_no === order.combine_out_trade_no) return this.update(order);
    if (!order) {
      // Back to the keypad: a thank-you under way finishes; a waiting QR is withdrawn.
      this.follow(null);
      return this.publish();
    }
    // An order that already ended (opened from history, or re-opened after its thank-you) is not
    // the customer's business any more: idle.
    if (this.ended.has(order.combine_out_trade_no) || this.endingOf(order)) {
      this.follow(null);
      this.clearEnding();
      return this.publish();
    }
    this.clearEnding();
    this.follow(order);
    this.publish();
  }

  /** A pushed update of any order; only the presented one matters. */
  update(order: Order): void {
    const cur = this.order;
    if (!cur || cur.combine_out_trade_no !== order.combine_out_trade_no) return;
    if (cur.version !== undefined && order.version !== undefined && order.version < cur.version) return;
    const end = this.endingOf(order);
    if (end) {
      this.follow(null);
      this.ended.add(order.combine_out_trade_no);
      if (this.ended.size > 200) this.ended.delete(this.ended.values().next().value!);
      this.showEnding(end);
      return;
    }
    this.follow(order);
    this.publish();
  }

  /** Re-sends the view (settings changed: store name, logo or language). */
  refresh(): void {
    this.last = '';
    this.publish();
  }

  close(): void {
    this.clearEnding();
    this.follow(null);
    this.bus.removeAllListeners();
  }

  private endingOf(o: Order): Ending | null {
    if (o.state === 'SUCCESS') return { phase: 'paid', amount: o.total_amount };
    if (o.state === 'CLOSED') return { phase: 'failed', reason: 'closed', amount: o.total_amount };
    if (o.state === 'PAYERROR' || o.creation === 'FAILED') return { phase: 'failed', reason: 'failed', amount: o.total_amount };
    return null;
  }

  private follow(order: Order | null): void {
    if (this.expiryTimer) { clearTimeout(this.expiryTimer); this.expiryTimer = null; }
    this.order = order;
    if (!order) return;
    // The QR stops working at expires_at even if no update arrives: stop showing it then.
    const left = Date.parse(order.expires_at) - (this.opts.now ?? Date.now)();
    if (!Number.isFinite(left)) return;
    const no = order.combine_out_trade_no;
    const expire = () => {
      if (this.order?.combine_out_trade_no !== no) return;
      this.follow(null);
      this.ended.add(no);
      this.showEnding({ phase: 'failed', reason: 'expired', amount: order.total_amount });
    };
    if (left <= 0) { queueMicrotask(expire); return; }
    // setTimeout caps at ~24.8 days; an expiry is minutes away.
    this.expiryTimer = setTimeout(expire, Math.min(left, 2 ** 31 - 1));
    this.expiryTimer.unref?.();
  }

  private showEnding(end: Ending): void {
    this.clearEnding();
    this.ending = end;
    this.publish();
    this.endTimer = setTimeout(() => {
      this.endTimer = null;
      this.ending = null;
      this.publish();
    }, this.opts.thanksMs ?? 6_000);
    this.endTimer.unref?.();
  }

  private clearEnding(): void {
    if (this.endTimer) { clearTimeout(this.endTimer); this.endTimer = null; }
    this.ending = null;
  }

  /** Emits only when what the customer sees changed (updates of a waiting order are mostly not). */
  private publish(): void {
    const v = this.view();
    const key = JSON.stringify(v);
    if (key === this.last) return;
    this.last = key;
    this.bus.emit('view', v);
  }
}
