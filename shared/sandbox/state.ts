/**
 * The simulator's persistent state: one JSON file in DIR/sandbox, rewritten atomically
 * (temp file + rename) shortly after every change, so a crash never leaves it half-written and
 * a restart (`npm start` again) keeps orders, bills and pending notifications.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CombineNativeRequest, TradeState } from '../wechatpay/models';
import { SandboxError } from './errors';

export interface StoredSubOrder {
  out_trade_no: string;
  transaction_id?: string;
}

export interface StoredOrder {
  combine_out_trade_no: string;
  request: CombineNativeRequest;
  /** Canonical JSON of the request (sorted keys) to recognise an identical re-request. */
  fingerprint: string;
  /** Business-clock milliseconds. */
  created_at: number;
  expires_at: number;
  code_url: string;
  code_url_issued_at: number;
  state: TradeState;
  sub_orders: StoredSubOrder[];
  payer_openid?: string;
  bank_type?: string;
  paid_at?: number;
  closed_at?: number;
}

export type DeliveryKind = 'delivery' | 'probe' | 'duplicate';

export interface DeliveryLogEntry {
  order: string;
  notification_id: string;
  kind: DeliveryKind;
  /** 1-based attempt number of the real delivery (probes/duplicates carry the attempt they accompany). */
  attempt: number;
  /** ISO time (real clock) the request was sent. */
  at: string;
  at_ms: number;
  status?: number;
  reply?: string;
  error?: string;
  ok: boolean;
  duration_ms: number;
}

export interface PendingDelivery {
  order: string;
  /** The merchant whose keys sign it (absent in state written before per-merchant keys: the initiator). */
  mchid?: string;
  notification_id: string;
  notify_url: string;
  body: string;
  /** Real attempts already made. */
  attempts: number;
  /** Real-clock milliseconds of the next attempt. */
  next_at: number;
  probes: number;
  duplicates: number;
}

export interface BillAdjustment {
  out_trade_no: string;
  amount?: number;
  drop?: boolean;
}

export interface BillExtra {
  mchid: string;
  out_trade_no: string;
  amount: number;
  attach?: string;
  bill_date: string;
  transaction_id: string;
  time: number;
}

export interface SandboxState {
  version: 1;
  clock_offset_seconds: number;
  orders: Record<string, StoredOrder>;
  pending: PendingDelivery[];
  deliveries: DeliveryLogEntry[];
  bill_adjustments: BillAdjustment[];
  bill_extras: BillExtra[];
}

const MAX_LOG = 2000;

/** Writes are coalesced into one snapshot per this many ms (bounded cost under load). */
const FLUSH_DELAY_MS = 15;
/** After a failed write, the next try. */
const WRITE_RETRY_MS = 1000;

export class StateStore {
  readonly path: string;
  state: SandboxState;
  private timer: NodeJS.Timeout | undefined;
  private readonly onExit = () => {
    if (!this.timer) return;
    try {
      this.flush();
    } catch {
      // the folder is gone (a test cleaned up): nothing left to keep
    }
  };

  constructor(sandboxDir: string) {
    this.path = join(sandboxDir, 'state.json');
    this.state = existsSync(this.path) ? this.read() : { version: 1, clock_offset_seconds: 0, orders: {}, pending: [], deliveries: [], bill_adjustments: [], bill_extras: [] };
    // A process that exits without closing the sandbox still writes what it answered.
    process.once('exit', this.onExit);
  }

  private read(): SandboxState {
    try {
      const s = JSON.parse(readFileSync(this.path, 'utf8')) as SandboxState;
      if (s.version !== 1 || typeof s.orders !== 'object') throw new Error('unknown layout');
      return s;
    } catch (err) {
      throw new SandboxError('STATE_INVALID', `cannot read ${this.path}: ${(err as Error).message}`);
    }
  }

  /**
   * Marks the state changed. The snapshot follows within FLUSH_DELAY_MS (one write for a burst
   * of requests rather than one per request); close() and process exit flush at once.
   */
  save(): void {
    this.timer ??= setTimeout(() => this.backgroundFlush(), FLUSH_DELAY_MS);
  }

  /** The last background write that failed (cleared by the next one that succeeds). */
  lastWriteError: Error | undefined;

  /**
   * Timer path. The sandbox runs inside `npm start`'s process: a failed write (disk full, folder
   * not writable) must not throw from a timer and take the cashier's app down with it. The state
   * stays in memory and the write is tried again shortly (and at close / exit).
   */
  private backgroundFlush(): void {
    try {
      this.flush();
      this.lastWriteError = undefined;
    } catch (err) {
      this.lastWriteError = err as Error;
      this.timer = setTimeout(() => this.backgroundFlush(), WRITE_RETRY_MS);
      this.timer.unref();
    }
  }

  /** Writes the snapshot now: temp file + rename, so the file is always whole. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state.deliveries.length > MAX_LOG) this.state.deliveries.splice(0, this.state.deliveries.length - MAX_LOG);
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.path);
  }

  close(): void {
    if (this.timer) this.flush();
    process.removeListener('exit', this.onExit);
  }
}
