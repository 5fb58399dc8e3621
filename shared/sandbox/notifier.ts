/**
 * Payment notifications (reference §5): one TRANSACTION.SUCCESS per combine order, resource
 * encrypted with the APIv3 key (AAD "transaction"), signed headers, POSTed to notify_url.
 * A non-2xx reply or none within 5 s is retried on the real schedule, divided by the time scale.
 * Pending deliveries live in the state database, so a restart resumes them.
 */
import { randomUUID } from 'node:crypto';
import { encryptResource } from '../wechatpay/aead';
import { createNonce, PROBE_PREFIX, signBody } from '../wechatpay/sign';
import { formatBeijing } from '../wechatpay/time';
import type { NotificationEnvelope } from '../wechatpay/models';
import type { MerchantKeys, SandboxConfig } from './config';
import { defaultKey } from './auth';
import type { DeliveryKind, DeliveryLogEntry, PendingDelivery, StateStore } from './state';

/** Seconds between attempts: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (§5.4). */
export const RETRY_SCHEDULE_SECONDS = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600];
export const REPLY_TIMEOUT_MS = 5000;

export interface NotifierOptions {
  timeScale: number;
  replyTimeoutMs?: number;
  log?: (event: Record<string, unknown>) => void;
}

/** What to notify: the event, its plain resource (encrypted here), and a label for logs (the order or refund number). */
export interface Notification {
  event_type: string;
  summary: string;
  /** `transaction` or `refund`: also the AEAD associated data. */
  original_type: 'transaction' | 'refund';
  resource: object;
  label: string;
}

export class Notifier {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  /** Aborts replies still awaited at close: a restart re-sends them (next_at stays due). */
  private readonly abort = new AbortController();
  private closed = false;

  constructor(private readonly cfg: SandboxConfig, private readonly store: StateStore, private readonly opts: NotifierOptions) {}

  /** Resume deliveries left pending by a previous run. */
  start(): void {
    for (const p of this.store.state.pending) this.schedule(p);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
  }

  /**
   * Queue the notification of a paid order; the first attempt goes out at once. `merchant` is the
   * merchant the notification concerns (combine: the initiator): its APIv3 key encrypts the
   * resource and its WeChat Pay key signs every attempt.
   */
  enqueue(merchant: MerchantKeys, n: Notification, notifyUrl: string, businessNow: number, extras: { probes?: number; duplicates?: number } = {}): PendingDelivery {
    const envelope: NotificationEnvelope = {
      id: randomUUID(),
      create_time: formatBeijing(businessNow),
      resource_type: 'encrypt-resource',
      event_type: n.event_type,
      summary: n.summary,
      resource: { original_type: n.original_type, ...encryptResource(JSON.stringify(n.resource), merchant.apiV3Key, n.original_type) } as NotificationEnvelope['resource'],
    };
    const p: PendingDelivery = {
      order: n.label,
      mchid: merchant.mchid,
      notification_id: envelope.id,
      notify_url: notifyUrl,
      body: JSON.stringify(envelope),
      attempts: 0,
      next_at: Date.now(),
      probes: Math.max(0, Math.min(5, extras.probes ?? 0)),
      duplicates: Math.max(0, Math.min(5, extras.duplicates ?? 0)),
    };
    this.store.putPending(p);
    this.store.state.pending.push(p);
    this.schedule(p);
    return p;
  }

  private schedule(p: PendingDelivery): void {
    if (this.closed) return;
    const delay = Math.max(0, p.next_at - Date.now());
    const t = setTimeout(() => {
      this.timers.delete(p.notification_id);
      const run = this.attempt(p).catch((err) => this.opts.log?.({ event: 'notify_error', order: p.order, error: String(err) }));
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
    }, delay);
    this.timers.set(p.notification_id, t);
  }

  /** Signature headers by the WeChat Pay key of the merchant the notification concerns. */
  private sign(p: PendingDelivery): Record<string, string> {
    // Deliveries queued by an older version carry no mchid: they were the initiator's.
    const key = defaultKey((p.mchid && this.cfg.keys.get(p.mchid)) || this.cfg.initiator);
    return signBody(key.key, key.serial, p.body);
  }

  /** true = 2xx reply, false = failed attempt (logged), null = cut short by close (not counted). */
  private async send(p: PendingDelivery, kind: DeliveryKind): Promise<boolean | null> {
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': 'Mozilla/4.0 (WechatPay sandbox)',
      'Request-ID': `08${createNonce(24)}`,
      ...this.sign(p),
    };
    // A probe carries a deliberately bogus signature; a correct receiver must refuse it.
    if (kind === 'probe') headers['Wechatpay-Signature'] = `${PROBE_PREFIX}${createNonce(40)}`;
    const started = Date.now();
    const entry: DeliveryLogEntry = {
      order: p.order,
      notification_id: p.notification_id,
      kind,
      attempt: kind === 'delivery' ? p.attempts + 1 : p.attempts + (kind === 'probe' ? 1 : 0),
      at: new Date(started).toISOString(),
      at_ms: started,
      ok: false,
      duration_ms: 0,
    };
    try {
      const res = await fetch(p.notify_url, {
        method: 'POST',
        headers,
        body: p.body,
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.opts.replyTimeoutMs ?? REPLY_TIMEOUT_MS), this.abort.signal]),
      });
      entry.status = res.status;
      entry.reply = (await res.text()).slice(0, 300);
      entry.ok = res.status >= 200 && res.status < 300;
    } catch (err) {
      if (this.closed) return null;
      const e = err as Error;
      entry.error = e.name === 'TimeoutError' ? `no reply within ${(this.opts.replyTimeoutMs ?? REPLY_TIMEOUT_MS) / 1000}s` : `${e.message}${e.cause ? `: ${(e.cause as Error).message ?? e.cause}` : ''}`;
    }
    entry.duration_ms = Date.now() - started;
    this.store.addDelivery(entry);
    this.opts.log?.({ event: 'notify', ...entry });
    return entry.ok;
  }

  private async attempt(p: PendingDelivery): Promise<void> {
    if (this.closed) return;
    while (p.probes > 0 && !this.closed) {
      p.probes--;
      this.store.putPending(p);
      await this.send(p, 'probe');
    }
    const ok = await this.send(p, 'delivery');
    if (ok === null) return;
    p.attempts++;
    if (ok) {
      this.store.deletePending(p);
      for (let i = 0; i < p.duplicates && !this.closed; i++) await this.send(p, 'duplicate');
      return;
    }
    if (p.attempts > RETRY_SCHEDULE_SECONDS.length) {
      // Schedule exhausted (≈ 24 h real): WeChat Pay gives up; reconcile by query and bill.
      this.store.deletePending(p);
      this.opts.log?.({ event: 'notify_gave_up', order: p.order });
    } else {
      p.next_at = Date.now() + (RETRY_SCHEDULE_SECONDS[p.attempts - 1]! * 1000) / this.opts.timeScale;
      this.store.putPending(p);
      this.schedule(p);
    }
  }
}
