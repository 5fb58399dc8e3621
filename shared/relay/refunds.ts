/**
 * Refunds per sub-order (contract §2, addendum "Refunds"): `POST /v1/orders/{id}/refunds`,
 * `GET /v1/refunds`, the follow-up of refunds whose answer was lost or that are still
 * PROCESSING, and the application of `REFUND.*` notifications.
 *
 * The refund is recorded (PENDING) before WeChat Pay is called, in the same immediate SQLite
 * transaction that checks what is left of the sub-order: two managers refunding at once are
 * serialized by SQLite's write lock, so the sum never exceeds what was paid. Then the sub-order's
 * OWN merchant's client signs the create (the initiator is refused by WeChat Pay). A failure after
 * which WeChat Pay may have acted (timeout, 5xx) leaves the refund PENDING: the follower queries
 * it and, if WeChat Pay does not know it, sends the identical request again (the same
 * out_refund_no is the same refund, so this never refunds twice).
 */
import { createHash } from 'node:crypto';
import type { Refund, RefundStatus } from '../contracts/relay-api';
import type { RefundNotificationResource, RefundResult } from '../wechatpay/models';
import type { NotificationEnvelope } from '../wechatpay/models';
import type { Logger } from './log';
import { BadRequest, RelayError } from './errors';
import { newOutRefundNo, toRefund, type RefundRow, type RefundStore } from './refund-store';
import type { OrderStore } from './store';
import { errorCode, isAmbiguous, isNotFound, merchantKeysMissing, type PayClients } from './upstream';
import { textProblem } from './validate';

export interface RefundServiceOptions {
  store: OrderStore;
  refunds: RefundStore;
  clients: PayClients;
  /** notify_url of every request; read per request (a relay on port 0 knows it only once listening). */
  notifyUrl: () => string;
  /** RELAY_QUERY_AFTER_SECONDS: a PROCESSING refund's first query. */
  queryAfterSeconds: number;
  tickMs: number;
  log: Logger;
  alert: (kind: string, no: string | null, message: string, dedupeKey: string | null) => void;
}

export interface RefundInput {
  out_trade_no: string;
  amount: number;
  reason: string | null;
}

/** Sandbox and WeChat Pay: at least a minute between two refunds of one sub-order. */
export const REFUND_RETRY_AFTER_SECONDS = 60;

export function validateRefundInput(body: unknown): RefundInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.out_trade_no !== 'string' || !/^[0-9A-Za-z_-]{1,32}$/.test(b.out_trade_no)) throw new BadRequest('out_trade_no', 'must be the number of one of the order\'s sub-orders');
  if (typeof b.amount !== 'number' || !Number.isInteger(b.amount)) throw new BadRequest('amount', 'must be an integer number of fen');
  if (b.amount <= 0) throw new BadRequest('amount', 'must be positive');
  let reason: string | null = null;
  if (b.reason !== undefined && b.reason !== null) {
    if (typeof b.reason !== 'string') throw new BadRequest('reason', 'must be a string');
    const problem = textProblem(b.reason);
    if (problem) throw new BadRequest('reason', problem);
    // WeChat Pay: string(80), shown to the buyer; counted in characters (the page's unit).
    if ([...b.reason].length > 80) throw new BadRequest('reason', `is ${[...b.reason].length} characters, at most 80 allowed`);
    reason = b.reason.trim() === '' ? null : b.reason;
  }
  return { out_trade_no: b.out_trade_no, amount: b.amount, reason };
}

/** Query schedule: every min(RELAY_QUERY_AFTER_SECONDS, 60) s in the first five minutes, then doubling up to 30 min. */
export function nextRefundCheck(createdMs: number, now: number, queryAfterSeconds: number): number {
  const step = Math.max(1, Math.min(queryAfterSeconds, 60)) * 1000;
  const age = now - createdMs;
  if (age < 300_000) return now + step;
  const doublings = Math.min(5, Math.floor((age - 300_000) / 300_000) + 1);
  return now + Math.min(1_800_000, 60_000 * 2 ** doublings);
}

export class RefundService {
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly busy = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: RefundServiceOptions) {}

  /** POST /v1/orders/{no}/refunds. */
  async create(terminal: string, orderNo: string, body: unknown, idempotencyKey: string | null): Promise<Refund> {
    const input = validateRefundInput(body);
    const hash = createHash('sha256').update(JSON.stringify([orderNo, input.out_trade_no, input.amount, input.reason])).digest('hex');
    if (idempotencyKey) {
      const existing = this.o.refunds.byIdempotencyKey(terminal, idempotencyKey);
      if (existing) {
        if (existing.request_hash !== hash) throw new RelayError(409, 'IDEMPOTENCY_KEY_REUSED', 'Idempotency-Key was used for a different refund');
        return this.resume(existing);
      }
    }
    let row: RefundRow;
    try {
      row = this.record(terminal, orderNo, input, hash, idempotencyKey);
    } catch (err) {
      if (err instanceof RelayError) {
        this.o.store.audit(terminal, 'refund', orderNo, { out_trade_no: input.out_trade_no, amount: input.amount, reason: input.reason, outcome: err.code });
      }
      throw err;
    }
    this.o.store.audit(terminal, 'refund', orderNo, {
      out_refund_no: row.out_refund_no, out_trade_no: row.out_trade_no, mchid: row.mchid, amount: row.amount, reason: row.reason, outcome: 'RECORDED',
    });
    this.o.log.info({ order: orderNo, refund: row.out_refund_no, amount: row.amount, terminal }, 'refund recorded');
    await this.send(row.out_refund_no);
    return this.answer(row.out_refund_no);
  }

  /** The refund as the API answers it; a refusal WeChat Pay gave is thrown as its error. */
  private answer(no: string): Refund {
    const row = this.o.refunds.get(no)!;
    if (row.status === 'FAILED') throw refusal(row.error_code ?? 'ERROR', row.error_message ?? '', row);
    return toRefund(row);
  }

  private async resume(row: RefundRow): Promise<Refund> {
    if (row.status === 'PENDING') await this.send(row.out_refund_no);
    return this.answer(row.out_refund_no);
  }

  /** The check of what is left and the insert: one immediate transaction (the write lock first). */
  private record(terminal: string, orderNo: string, input: RefundInput, hash: string, idempotencyKey: string | null): RefundRow {
    const now = Date.now();
    const no = newOutRefundNo(now);
    const { change, row } = this.o.store.db.transaction(() => {
      const order = this.o.store.row(orderNo);
      if (!order) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${orderNo}`);
      if (order.state !== 'SUCCESS') throw new RelayError(409, 'ORDER_NOT_PAID', `order ${orderNo} is ${order.state}, not paid: nothing to refund`);
      const sub = this.o.store.subRows(orderNo).find((s) => s.out_trade_no === input.out_trade_no);
      if (!sub) throw new BadRequest('out_trade_no', `${input.out_trade_no} is not a sub-order of ${orderNo}`);
      // The sub-order's own merchant signs its refunds (contract §1.1).
      if (!this.o.clients.has(sub.mchid)) throw merchantKeysMissing(sub.mchid);
      const taken = this.o.refunds.taken(sub.out_trade_no);
      const left = sub.amount - taken;
      if (input.amount > left) {
        throw new RelayError(409, 'REFUND_EXCEEDS_PAID', `${input.amount} fen is more than the ${left} fen left to refund of sub-order ${sub.out_trade_no} (paid ${sub.amount} fen)`, {
          remaining_amount: left, paid_amount: sub.amount,
        });
      }
      const row = {
        out_refund_no: no, combine_out_trade_no: orderNo, out_trade_no: sub.out_trade_no, mchid: sub.mchid, amount: input.amount, total: sub.amount,
        reason: input.reason, status: 'PENDING' as const, created_at: new Date(now).toISOString(), created_ms: now, terminal,
        idempotency_key: idempotencyKey, request_hash: hash, next_check_ms: now + 1000,
      };
      return { change: this.o.refunds.insertInTx({ row }), row };
    }).immediate();
    if (change) this.o.store.emitChange(change);
    return this.o.refunds.get(row.out_refund_no)!;
  }

  /** Sends (or re-sends, identically) the create of a recorded refund; one at a time per refund. */
  send(no: string): Promise<void> {
    const existing = this.inflight.get(no);
    if (existing) return existing;
    const p = this.doSend(no).finally(() => this.inflight.delete(no));
    this.inflight.set(no, p);
    return p;
  }

  private async doSend(no: string): Promise<void> {
    const row = this.o.refunds.get(no);
    if (!row || row.status !== 'PENDING') return;
    try {
      const client = this.o.clients.get(row.mchid);
      const res = await client.createRefund({
        out_trade_no: row.out_trade_no,
        out_refund_no: row.out_refund_no,
        ...(row.reason ? { reason: row.reason } : {}),
        notify_url: this.o.notifyUrl(),
        amount: { refund: row.amount, total: row.total, currency: 'CNY' },
      });
      this.applyResult(row, res, 'create');
    } catch (err) {
      const code = errorCode(err);
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof RelayError) throw err;
      if (isAmbiguous(err)) {
        // WeChat Pay may hold it: the follower asks soon (and re-sends if it does not).
        this.o.refunds.note(no, code, message);
        this.o.refunds.schedule(no, Date.now() + 1000);
        this.o.log.warn({ refund: no, code }, 'refund answer lost: will query');
        return;
      }
      this.o.refunds.update(no, { status: 'FAILED', error_code: code, error_message: message });
      this.o.log.warn({ refund: no, code }, 'refund refused by WeChat Pay');
    }
  }

  /** WeChat's view (create answer or query) after checking it is about what we recorded. */
  private applyResult(row: RefundRow, res: RefundResult, source: string): void {
    if (res.out_trade_no !== row.out_trade_no || res.amount?.refund !== row.amount) {
      this.o.alert('REFUND_MISMATCH', row.combine_out_trade_no, `${source} of refund ${row.out_refund_no}: WeChat Pay says ${res.out_trade_no} ${res.amount?.refund} fen, recorded ${row.out_trade_no} ${row.amount} fen`, `${source}:${row.out_refund_no}:REFUND_MISMATCH`);
      return;
    }
    const changed = this.o.refunds.update(row.out_refund_no, { status: res.status, refund_id: res.refund_id, success_time: res.success_time ?? null, error_code: null, error_message: null });
    if (changed) {
      this.o.log.info({ refund: row.out_refund_no, status: res.status, source }, 'refund status changed');
      if (res.status === 'ABNORMAL') this.abnormal(row);
    }
    const after = this.o.refunds.get(row.out_refund_no)!;
    // First query RELAY_QUERY_AFTER_SECONDS after creation, then nextRefundCheck's schedule.
    if (after.watch === 1) this.o.refunds.schedule(row.out_refund_no, Math.max(row.created_ms + this.o.queryAfterSeconds * 1000, nextRefundCheck(row.created_ms, Date.now(), this.o.queryAfterSeconds)));
  }

  private abnormal(row: RefundRow): void {
    this.o.alert('REFUND_ABNORMAL', row.combine_out_trade_no, `refund ${row.out_refund_no} (${row.amount} fen, merchant ${row.mchid}) is ABNORMAL: finish it by hand on the merchant platform`, `refund:${row.out_refund_no}:ABNORMAL`);
  }

  /** GET /v1/refunds?date=&status= */
  list(dayStartMs: number, status: string | null, limit: number): Refund[] {
    return this.o.refunds.list(dayStartMs, status, limit);
  }

  // ─── the follower: lost answers and PROCESSING refunds, until final ─────────────────────────

  start(): void {
    // Refunds recorded but maybe never sent (a crash between the record and the call).
    this.o.refunds.resumePending();
    this.timer = setInterval(() => this.tick(), this.o.tickMs);
    this.timer.unref();
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.busy.values(), ...this.inflight.values()]);
  }

  tick(): void {
    if (this.stopped) return;
    const room = 4 - this.busy.size;
    if (room <= 0) return;
    for (const no of this.o.refunds.due(Date.now(), room + this.busy.size)) {
      if (this.busy.has(no) || this.busy.size >= 4) continue;
      const p = this.check(no)
        .catch((err) => this.o.log.warn({ refund: no, err: (err as Error).message }, 'refund check failed'))
        .finally(() => this.busy.delete(no));
      this.busy.set(no, p);
    }
  }

  async check(no: string): Promise<void> {
    const row = this.o.refunds.get(no);
    if (!row || row.watch === 0) return;
    const now = Date.now();
    if (this.inflight.has(no)) return this.o.refunds.schedule(no, now + 1000);
    // Come back later whatever happens below (an answer reschedules it sooner or unwatches it).
    this.o.refunds.schedule(no, nextRefundCheck(row.created_ms, now, this.o.queryAfterSeconds));
    let res: RefundResult;
    try {
      res = await this.o.clients.get(row.mchid).queryRefund(no);
    } catch (err) {
      if (isNotFound(err) && row.status === 'PENDING') {
        // WeChat Pay never got it: send it now (same number, same body).
        await this.send(no);
        return;
      }
      throw err;
    }
    this.applyResult(row, res, 'query');
  }

  // ─── REFUND.* notifications ──────────────────────────────────────────────────────────────

  /**
   * One transaction: the notification id (UNIQUE: a duplicate stops here), the checks against
   * what we recorded (merchant, sub-order, amount) and the status change. A mismatch rolls back
   * (the id is not kept) and alerts. Returns the HTTP answer for WeChat Pay.
   */
  applyNotification(envelope: NotificationEnvelope, r: RefundNotificationResource, insertNotification: (id: string, no: string, eventType: string) => boolean): { status: number; message?: string } {
    let outcome: { status: number; message?: string; alert?: [string, string | null, string] } = { status: 204 };
    const change = this.o.store.db.transaction(() => {
      const row = this.o.refunds.get(r.out_refund_no);
      if (!row) {
        outcome = { status: 404, message: `unknown refund ${r.out_refund_no}`, alert: ['UNKNOWN_REFUND', null, `notification ${envelope.id} for unknown refund ${r.out_refund_no}`] };
        return null;
      }
      const wrong = row.mchid !== r.mchid ? `merchant ${r.mchid}, recorded ${row.mchid}`
        : row.out_trade_no !== r.out_trade_no ? `sub-order ${r.out_trade_no}, recorded ${row.out_trade_no}`
        : row.amount !== r.amount?.refund ? `amount ${r.amount?.refund} fen, recorded ${row.amount} fen`
        : row.total !== r.amount?.total ? `total ${r.amount?.total} fen, recorded ${row.total} fen` : null;
      if (wrong) {
        outcome = { status: 400, message: 'notification does not match the refund: REFUND_MISMATCH', alert: ['REFUND_MISMATCH', row.combine_out_trade_no, `notification ${envelope.id} about refund ${r.out_refund_no}: ${wrong}`] };
        return null;
      }
      if (!insertNotification(envelope.id, row.combine_out_trade_no, envelope.event_type)) return null; // duplicate: already applied
      const c = this.o.refunds.updateInTx(row, { status: r.refund_status as RefundStatus, refund_id: r.refund_id, success_time: r.success_time ?? null, error_code: null, error_message: null });
      if (c && r.refund_status === 'ABNORMAL') outcome = { status: 204, alert: ['REFUND_ABNORMAL', row.combine_out_trade_no, `refund ${row.out_refund_no} (${row.amount} fen, merchant ${row.mchid}) is ABNORMAL: finish it by hand on the merchant platform`] };
      return c;
    }).immediate();
    if (change) {
      this.o.store.emitChange(change);
      this.o.log.info({ refund: r.out_refund_no, status: r.refund_status, source: 'notification' }, 'refund status changed');
    }
    const o = outcome as { status: number; message?: string; alert?: [string, string | null, string] };
    if (o.alert) this.o.alert(o.alert[0], o.alert[1], o.alert[2], `notify:${envelope.id}:${o.alert[0]}`);
    return { status: o.status, message: o.message };
  }
}

/** A refusal by WeChat Pay, as the contract's code with clear words. */
export function refusal(code: string, message: string, row?: RefundRow): RelayError {
  const c = code.toUpperCase();
  const extra = row ? { out_refund_no: row.out_refund_no } : {};
  if (c === 'FREQUENCY_LIMITED') {
    return new RelayError(409, 'REFUND_TOO_SOON', `WeChat Pay allows one refund of a sub-order per minute: try again in ${REFUND_RETRY_AFTER_SECONDS}s (${message})`, { retry_after_seconds: REFUND_RETRY_AFTER_SECONDS, ...extra });
  }
  if (c === 'NOT_ENOUGH') return new RelayError(409, 'REFUND_EXCEEDS_PAID', `WeChat Pay: not enough left to refund (${message})`, extra);
  if (c === 'SYSTEM_ERROR' || c === 'SYSTEMERROR' || c === 'RATE_LIMITED' || c === 'TIMEOUT' || c === 'NETWORK_ERROR') {
    return new RelayError(503, 'WECHATPAY_BUSY', `WeChat Pay is busy: try again in a moment (${message})`, { retry_after_seconds: 30, ...extra });
  }
  return new RelayError(502, `UPSTREAM_${c}`, `WeChat Pay refused the refund: ${message}`, { upstream_code: c, ...extra });
}
