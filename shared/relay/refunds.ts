/**
 * Refunds per sub-order (contract §2, addendum "Refunds"): `POST /v1/orders/{id}/refunds`,
 * `GET /v1/refunds`, the follow-up of refunds whose answer was lost or that are still
 * PROCESSING, and the application of `REFUND.*` notifications.
 *
 * The refund is recorded (PENDING) before WeChat Pay is called, in the same transaction that
 * checks what is left of the sub-order (RefundsRepo.record): two managers refunding at once, on
 * one relay or two, are serialized there, so the sum never exceeds what was paid. Then the sub-order's
 * OWN merchant's client signs the create (the initiator is refused by WeChat Pay). A failure after
 * which WeChat Pay may have acted (timeout, 5xx) leaves the refund PENDING: the follower queries
 * it and, if WeChat Pay does not know it, sends the identical request again (the same
 * out_refund_no is the same refund, so this never refunds twice). The follower claims due
 * refunds with a lease (RefundsRepo.claimDue): two relays never check the same refund at once,
 * and a dead relay's refunds come due to the others when the lease runs out.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Refund, RefundStatus } from '../contracts/relay-api';
import type { RefundNotificationResource, RefundResult } from '../wechatpay/models';
import type { NotificationEnvelope } from '../wechatpay/models';
import type { Logger } from './log';
import { BadRequest, RelayError } from './errors';
import { CHECK_LEASE_MS, SEND_LEASE_MS } from './leases';
import { OrderWaits } from './order-waits';
import { toRefund } from './refund-view';
import type { NewRefund, RefundDecisionInput, RefundMismatch, RefundRow } from './repo-refunds';
import type { RelayStore } from './repo-types';
import { errorCode, isAmbiguous, isNotFound, merchantKeysMissing, type PayClients } from './upstream';
import { textProblem } from './validate';

export interface RefundServiceOptions {
  /** `refunds`, `audit`, and `feed`/`engine` to wait for another relay's send (repo-refunds.ts, repo-types.ts). */
  store: Pick<RelayStore, 'refunds' | 'audit' | 'feed' | 'engine'>;
  clients: PayClients;
  /** notify_url of every request; read per request (a relay on port 0 knows it only once listening). */
  notifyUrl: () => string;
  /** RELAY_QUERY_AFTER_SECONDS: a PROCESSING refund's first query. */
  queryAfterSeconds: number;
  tickMs: number;
  log: Logger;
  /** Stores (once per dedupe key) and pushes an alert; awaited when it returns a promise. */
  alert: (kind: string, no: string | null, message: string, dedupeKey: string | null) => unknown;
}

/** Refund checks running at once per relay. */
const MAX_BUSY = 4;

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `R` + 9 base36 digits of ms + 10 random base62: `[0-9A-Za-z]`, 20 characters, time-sortable. */
export function newOutRefundNo(now = Date.now()): string {
  let tail = '';
  while (tail.length < 10) for (const b of randomBytes(16)) if (b < 248 && tail.length < 10) tail += B62[b % 62];
  return 'R' + now.toString(36).toUpperCase().padStart(9, '0') + tail;
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
  private claiming: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Requests waiting for a refund another relay is sending: a refund's change stamps its order. */
  private readonly waits: OrderWaits;

  constructor(private readonly o: RefundServiceOptions) {
    this.waits = new OrderWaits(o.store.feed);
  }

  private get repo() {
    return this.o.store.refunds;
  }

  /** POST /v1/orders/{no}/refunds. */
  async create(terminal: string, orderNo: string, body: unknown, idempotencyKey: string | null): Promise<Refund> {
    const input = validateRefundInput(body);
    const hash = createHash('sha256').update(JSON.stringify([orderNo, input.out_trade_no, input.amount, input.reason])).digest('hex');
    if (idempotencyKey) {
      const existing = await this.repo.byIdempotencyKey(terminal, idempotencyKey);
      if (existing) return this.again(existing, hash);
    }
    const now = Date.now();
    let row: RefundRow;
    try {
      const r = await this.repo.record(
        { orderNo, outTradeNo: input.out_trade_no, terminal, idempotencyKey },
        (d) => this.decide(d, { terminal, orderNo, input, hash, idempotencyKey, now }),
      );
      // The key was taken meanwhile (another request, maybe on another relay): that refund.
      if (r.kind === 'existing') return this.again(r.row, hash);
      row = r.row;
    } catch (err) {
      if (err instanceof RelayError) {
        await this.o.store.audit.add(terminal, 'refund', orderNo, { out_trade_no: input.out_trade_no, amount: input.amount, reason: input.reason, outcome: err.code });
      }
      throw err;
    }
    await this.o.store.audit.add(terminal, 'refund', orderNo, {
      out_refund_no: row.out_refund_no, out_trade_no: row.out_trade_no, mchid: row.mchid, amount: row.amount, reason: row.reason, outcome: 'RECORDED',
    });
    this.o.log.info({ order: orderNo, refund: row.out_refund_no, amount: row.amount, terminal }, 'refund recorded');
    await this.send(row.out_refund_no);
    return this.answer(row.out_refund_no);
  }

  /** The same Idempotency-Key again: the same request resumes its refund, another one is refused. */
  private async again(existing: RefundRow, hash: string): Promise<Refund> {
    if (existing.request_hash !== hash) throw new RelayError(409, 'IDEMPOTENCY_KEY_REUSED', 'Idempotency-Key was used for a different refund');
    let row = existing;
    const ours = this.inflight.get(row.out_refund_no);
    if (ours) await ours;
    // Several relays (PostgreSQL): a young PENDING refund is being sent by the relay that
    // recorded it. A second create at the same time could get a refusal (frequency) and mark as
    // FAILED a refund WeChat Pay is making: wait for its outcome instead.
    else if (this.o.store.engine === 'postgresql' && row.status === 'PENDING') row = await this.awaitOtherSender(row);
    if (row.status === 'PENDING') await this.send(row.out_refund_no);
    return this.answer(row.out_refund_no);
  }

  /** Until the refund is no longer PENDING or the sender's lease ran out (woken by its order's changes). */
  private async awaitOtherSender(row: RefundRow): Promise<RefundRow> {
    for (;;) {
      const left = row.created_ms + SEND_LEASE_MS - Date.now();
      if (left <= 0 || row.status !== 'PENDING') return row;
      await this.waits.next(row.combine_out_trade_no, left);
      row = (await this.repo.get(row.out_refund_no)) ?? row;
    }
  }

  /**
   * Inside the record transaction (pure, synchronous): what is left of the sub-order, read in that
   * transaction, decides; a refusal is thrown (nothing is written).
   */
  private decide(d: RefundDecisionInput, c: { terminal: string; orderNo: string; input: RefundInput; hash: string; idempotencyKey: string | null; now: number }): NewRefund {
    const { order, subs, taken } = d;
    const { orderNo, input, now } = c;
    if (!order) throw new RelayError(404, 'ORDER_NOT_FOUND', `no order ${orderNo}`);
    if (order.state !== 'SUCCESS') throw new RelayError(409, 'ORDER_NOT_PAID', `order ${orderNo} is ${order.state}, not paid: nothing to refund`);
    const sub = subs.find((s) => s.out_trade_no === input.out_trade_no);
    if (!sub) throw new BadRequest('out_trade_no', `${input.out_trade_no} is not a sub-order of ${orderNo}`);
    // The sub-order's own merchant signs its refunds (contract §1.1).
    if (!this.o.clients.has(sub.mchid)) throw merchantKeysMissing(sub.mchid);
    const left = sub.amount - taken;
    if (input.amount > left) {
      throw new RelayError(409, 'REFUND_EXCEEDS_PAID', `${input.amount} fen is more than the ${left} fen left to refund of sub-order ${sub.out_trade_no} (paid ${sub.amount} fen)`, {
        remaining_amount: left, paid_amount: sub.amount,
      });
    }
    return {
      row: {
        out_refund_no: newOutRefundNo(now), combine_out_trade_no: orderNo, out_trade_no: sub.out_trade_no, mchid: sub.mchid, amount: input.amount, total: sub.amount,
        reason: input.reason, status: 'PENDING', created_at: new Date(now).toISOString(), created_ms: now, terminal: c.terminal,
        idempotency_key: c.idempotencyKey, request_hash: c.hash,
        // Ours while the create is on its way; the answer sets the next check. If this relay
        // dies first, the lease runs out and the follower (of any relay) takes it over.
        next_check_ms: now + SEND_LEASE_MS,
      },
    };
  }

  /** The refund as the API answers it; a refusal WeChat Pay gave is thrown as its error. */
  private async answer(no: string): Promise<Refund> {
    const row = (await this.repo.get(no))!;
    if (row.status === 'FAILED') throw refusal(row.error_code ?? 'ERROR', row.error_message ?? '', row);
    return toRefund(row);
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
    const row = await this.repo.get(no);
    if (!row || row.status !== 'PENDING') return;
    let res: RefundResult;
    try {
      const client = this.o.clients.get(row.mchid);
      res = await client.createRefund({
        out_trade_no: row.out_trade_no,
        out_refund_no: row.out_refund_no,
        ...(row.reason ? { reason: row.reason } : {}),
        notify_url: this.o.notifyUrl(),
        amount: { refund: row.amount, total: row.total, currency: 'CNY' },
      });
    } catch (err) {
      const code = errorCode(err);
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof RelayError) throw err;
      if (isAmbiguous(err)) {
        // WeChat Pay may hold it: the follower asks soon (and re-sends if it does not).
        await this.repo.note(no, code, message);
        await this.repo.schedule(no, Date.now() + 1000);
        this.o.log.warn({ refund: no, code }, 'refund answer lost: will query');
        return;
      }
      await this.repo.update(no, { status: 'FAILED', error_code: code, error_message: message });
      this.o.log.warn({ refund: no, code }, 'refund refused by WeChat Pay');
      return;
    }
    await this.applyResult(row, res, 'create');
  }

  /** WeChat's view (create answer or query) after checking it is about what we recorded; sets the next check. */
  private async applyResult(row: RefundRow, res: RefundResult, source: string): Promise<void> {
    if (res.out_trade_no !== row.out_trade_no || res.amount?.refund !== row.amount) {
      await this.alert('REFUND_MISMATCH', row.combine_out_trade_no, `${source} of refund ${row.out_refund_no}: WeChat Pay says ${res.out_trade_no} ${res.amount?.refund} fen, recorded ${row.out_trade_no} ${row.amount} fen`, `${source}:${row.out_refund_no}:REFUND_MISMATCH`);
      await this.repo.schedule(row.out_refund_no, nextRefundCheck(row.created_ms, Date.now(), this.o.queryAfterSeconds));
      return;
    }
    const changed = await this.repo.update(row.out_refund_no, { status: res.status, refund_id: res.refund_id, success_time: res.success_time ?? null, error_code: null, error_message: null });
    if (changed) {
      this.o.log.info({ refund: row.out_refund_no, status: res.status, source }, 'refund status changed');
      if (res.status === 'ABNORMAL') await this.abnormal(row);
    }
    const after = (await this.repo.get(row.out_refund_no))!;
    // First query RELAY_QUERY_AFTER_SECONDS after creation, then nextRefundCheck's schedule.
    if (after.watch === 1) await this.repo.schedule(row.out_refund_no, Math.max(row.created_ms + this.o.queryAfterSeconds * 1000, nextRefundCheck(row.created_ms, Date.now(), this.o.queryAfterSeconds)));
  }

  private abnormal(row: RefundRow): Promise<void> {
    return this.alert('REFUND_ABNORMAL', row.combine_out_trade_no, `refund ${row.out_refund_no} (${row.amount} fen, merchant ${row.mchid}) is ABNORMAL: finish it by hand on the merchant platform`, `refund:${row.out_refund_no}:ABNORMAL`);
  }

  /** An alert never breaks the path that raised it. */
  private async alert(kind: string, no: string | null, message: string, dedupeKey: string | null): Promise<void> {
    try {
      await this.o.alert(kind, no, message, dedupeKey);
    } catch (err) {
      this.o.log.error({ kind, err: (err as Error).message }, 'alert not stored');
    }
  }

  /** GET /v1/refunds?date=&status= */
  async list(dayStartMs: number, status: string | null, limit: number): Promise<Refund[]> {
    return (await this.repo.list(dayStartMs, status, limit)).map(toRefund);
  }

  // ─── the follower: lost answers and PROCESSING refunds, until final ─────────────────────────

  /** Starts the follower; resolves once refunds left PENDING by a crash are due (SQLite) and the first tick ran. */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.tick(), this.o.tickMs);
    this.timer.unref();
    try {
      await this.repo.resumePending();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'refunds: resume of pending ones failed');
    }
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.claiming;
    await Promise.allSettled([...this.busy.values(), ...this.inflight.values()]);
  }

  /** Claims due refunds (each leased to this relay) and checks them, at most MAX_BUSY at once. */
  tick(): void {
    if (this.stopped || this.claiming) return;
    const room = MAX_BUSY - this.busy.size;
    if (room <= 0) return;
    this.claiming = this.repo.claimDue(Date.now(), room, CHECK_LEASE_MS).then(
      (nos) => {
        // Claimed: leased to us, so checked even when stop() came meanwhile (it waits for them).
        for (const no of nos) {
          if (this.busy.has(no)) continue;
          const p = this.check(no)
            .catch((err) => this.o.log.warn({ refund: no, err: (err as Error).message }, 'refund check failed'))
            .finally(() => this.busy.delete(no));
          this.busy.set(no, p);
        }
      },
      (err) => this.o.log.warn({ err: (err as Error).message }, 'refunds: claim of due ones failed'),
    ).finally(() => {
      this.claiming = null;
    });
  }

  /** One check of a claimed refund: query it (re-send when WeChat Pay never got it); every way out sets its next check. */
  async check(no: string): Promise<void> {
    const row = await this.repo.get(no);
    if (!row || row.watch === 0) return;
    if (this.inflight.has(no)) return this.repo.schedule(no, Date.now() + 1000);
    let res: RefundResult;
    try {
      res = await this.o.clients.get(row.mchid).queryRefund(no);
    } catch (err) {
      if (isNotFound(err) && row.status === 'PENDING') {
        // WeChat Pay never got it: send it now (same number, same body).
        await this.send(no);
        return;
      }
      await this.repo.schedule(no, nextRefundCheck(row.created_ms, Date.now(), this.o.queryAfterSeconds));
      throw err;
    }
    await this.applyResult(row, res, 'query');
  }

  // ─── REFUND.* notifications ──────────────────────────────────────────────────────────────

  /**
   * One transaction (the repository's): the checks against what we recorded (merchant,
   * sub-order, amount), the notification id (a duplicate, on any relay, stops there) and the
   * status change. A mismatch writes nothing (the id is not kept) and alerts. Returns the HTTP
   * answer for WeChat Pay.
   */
  async applyNotification(envelope: NotificationEnvelope, r: RefundNotificationResource): Promise<{ status: number; message?: string }> {
    const out = await this.repo.applyNotification(
      {
        id: envelope.id, eventType: envelope.event_type, outRefundNo: r.out_refund_no,
        update: { status: r.refund_status as RefundStatus, refund_id: r.refund_id, success_time: r.success_time ?? null, error_code: null, error_message: null },
      },
      (row) => notificationMismatch(envelope.id, row, r),
    );
    switch (out.kind) {
      case 'unknown':
        await this.alert('UNKNOWN_REFUND', null, `notification ${envelope.id} for unknown refund ${r.out_refund_no}`, `notify:${envelope.id}:UNKNOWN_REFUND`);
        return { status: 404, message: `unknown refund ${r.out_refund_no}` };
      case 'mismatch':
        await this.alert(out.alertKind, out.row.combine_out_trade_no, out.message, `notify:${envelope.id}:${out.alertKind}`);
        return { status: 400, message: `notification does not match the refund: ${out.alertKind}` };
      case 'duplicate':
        return { status: 204 };
      case 'applied':
        if (out.changed) {
          this.o.log.info({ refund: r.out_refund_no, status: r.refund_status, source: 'notification' }, 'refund status changed');
          if (out.row.status === 'ABNORMAL') await this.abnormal(out.row);
        }
        return { status: 204 };
    }
  }
}

/** A notification about a refund that says something else than we recorded (pure). */
function notificationMismatch(id: string, row: RefundRow, r: RefundNotificationResource): RefundMismatch | null {
  const wrong = row.mchid !== r.mchid ? `merchant ${r.mchid}, recorded ${row.mchid}`
    : row.out_trade_no !== r.out_trade_no ? `sub-order ${r.out_trade_no}, recorded ${row.out_trade_no}`
    : row.amount !== r.amount?.refund ? `amount ${r.amount?.refund} fen, recorded ${row.amount} fen`
    : row.total !== r.amount?.total ? `total ${r.amount?.total} fen, recorded ${row.total} fen` : null;
  return wrong ? { alertKind: 'REFUND_MISMATCH', message: `notification ${id} about refund ${row.out_refund_no}: ${wrong}` } : null;
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
