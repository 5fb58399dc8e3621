/**
 * An order's timeline, from what the relay keeps: the order row (creation, payment and how it
 * became known, close), the events terminals report (slip/receipt printed, reprints), the audit
 * log entries naming the order (closes by whom or `auto`, refunds, …) and the refunds table.
 * Everything is found by the order number through an index (the store's timeline repository
 * reads it in one snapshot); the entries are assembled here.
 */
import type { OrderEventRequest, OrderTimeline, TimelineEntry } from '../contracts/counter-api';
import { BadRequest, RelayError } from './errors';
import type { TimelineRepo } from './repo-counter';

export function validOrderEvent(body: unknown): OrderEventRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  if (b.type !== 'printed') throw new BadRequest('type', 'must be "printed"');
  if (b.kind !== 'slip' && b.kind !== 'receipt') throw new BadRequest('kind', 'must be "slip" or "receipt"');
  if (b.reprint !== undefined && typeof b.reprint !== 'boolean') throw new BadRequest('reprint', 'must be true or false');
  for (const k of Object.keys(b)) if (!['type', 'kind', 'reprint'].includes(k)) throw new BadRequest(k, 'is not a field of an order event');
  return { type: 'printed', kind: b.kind, reprint: b.reprint === true };
}

function rank(e: TimelineEntry): number {
  if (e.type === 'created') return 0;
  if (e.type === 'qr_issued' || e.type === 'create_failed') return 1;
  if (e.type === 'printed' && e.detail.kind === 'slip') return 2;
  if (e.type === 'paid' || e.type === 'closed') return 3;
  return 4;
}

export class Timeline {
  constructor(private readonly repo: TimelineRepo) {}

  async record(no: string, terminal: string, e: OrderEventRequest, now = Date.now()): Promise<void> {
    if (!(await this.repo.record(no, new Date(now).toISOString(), terminal, e.type, JSON.stringify({ kind: e.kind, reprint: e.reprint })))) {
      throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    }
  }

  async get(no: string): Promise<OrderTimeline> {
    const d = await this.repo.get(no);
    if (!d) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${no}`);
    const o = d.order;
    const entries: TimelineEntry[] = [{ at: o.created_at, type: 'created', by: o.terminal, detail: {} }];
    // When WeChat Pay answered create is not kept: the outcome is shown at the creation time.
    if (o.creation === 'CREATED') entries.push({ at: o.created_at, type: 'qr_issued', by: 'wechatpay', detail: {} });
    if (o.creation === 'FAILED') entries.push({ at: o.created_at, type: 'create_failed', by: 'wechatpay', detail: { code: o.error_code, message: o.error_message } });
    for (const e of d.events) {
      entries.push({ at: e.at, type: e.type as TimelineEntry['type'], by: e.terminal, detail: e.detail ? JSON.parse(e.detail) : {} });
    }
    if (o.state === 'SUCCESS' && o.paid_at) {
      // Orders paid before paid_via existed say `unknown` rather than guess.
      entries.push({ at: o.paid_at, type: 'paid', by: 'wechatpay', detail: { via: o.paid_via ?? 'unknown', transaction_ids: o.transaction_ids ? JSON.parse(o.transaction_ids) : {} } });
    }
    let closer: string | null = null;
    for (const a of d.audit) {
      const detail = a.detail ? (JSON.parse(a.detail) as Record<string, unknown>) : {};
      if (a.action === 'close') {
        if (detail.outcome === 'CLOSED') {
          closer ??= a.terminal;
          continue;
        }
        entries.push({ at: a.at, type: 'close_refused', by: a.terminal, detail });
      } else {
        entries.push({ at: a.at, type: a.action.startsWith('refund') ? 'refund' : 'audit', by: a.terminal, detail: { action: a.action, ...detail } });
      }
    }
    if (o.state === 'CLOSED' && o.closed_at) {
      // A close with no audit entry: WeChat Pay reported it closed (a query) or creation failed outright.
      entries.push({ at: o.closed_at, type: 'closed', by: closer ?? (o.creation === 'FAILED' ? o.terminal : 'wechatpay'), detail: {} });
    }
    // The refund request is in the audit log (who, how much); here how it ended, when WeChat Pay said so.
    for (const r of d.refunds) {
      const at = Date.parse(r.success_time);
      entries.push({
        at: Number.isNaN(at) ? r.success_time : new Date(at).toISOString(), type: 'refund', by: 'wechatpay',
        detail: { status: r.status, out_refund_no: r.out_refund_no, out_trade_no: r.out_trade_no, mchid: r.mchid, amount: r.amount, refund_id: r.refund_id },
      });
    }
    // WeChat Pay's success_time has whole seconds: within one second the logical order decides
    // (the slip is printed before the payment, the receipt after it).
    const sec = (e: TimelineEntry) => e.at.slice(0, 19);
    entries.sort((a, b) => (sec(a) < sec(b) ? -1 : sec(a) > sec(b) ? 1 : rank(a) - rank(b)));
    return { combine_out_trade_no: no, entries };
  }
}
