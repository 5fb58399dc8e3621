/**
 * The simulator's persistent state in SQLite (better-sqlite3): every change is committed before
 * the answer that reports it is written, so a `kill -9` right after an answer loses nothing
 * (contract §3). Everything is also held in memory (loaded once at start) for the handlers.
 *
 * WAL with synchronous=NORMAL by default: a commit is the WAL write() into the OS, which survives
 * the death of the process (kill -9, a crash) — what the contract asks — without an fsync per
 * answer on a disk shared with the relay and tests. `FULL` (SANDBOX_DB_SYNCHRONOUS=FULL) adds
 * that fsync and survives a power cut too.
 *
 * An older folder's `state.json` is imported once in one transaction, then renamed
 * `state.json.migrated`.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { CombineNativeRequest, NativeRequest, TradeState } from '../wechatpay/models';
import { SandboxError } from './errors';

export interface StoredSubOrder {
  out_trade_no: string;
  transaction_id?: string;
  /** A refund was made on this sub-order: its trade_state reads REFUND (the order stays SUCCESS). */
  refunded?: boolean;
}

export interface StoredOrder {
  /** Absent: a combine order. 'basic': a basic Native order, held as one sub-order. */
  kind?: 'basic';
  /** The basic request as sent (kind 'basic'). */
  basic?: NativeRequest;
  /** The combine number; a basic order's out_trade_no. */
  combine_out_trade_no: string;
  /** The combine request; for a basic order its one-sub-order view (combine_mchid = its mchid). */
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

/** The key of an order in the state: the combine number, or `basic/<mchid>/<out_trade_no>`. */
export function orderKey(o: Pick<StoredOrder, 'kind' | 'combine_out_trade_no' | 'request'>): string {
  return o.kind === 'basic' ? `basic/${o.request.combine_mchid}/${o.combine_out_trade_no}` : o.combine_out_trade_no;
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

/** A refund (addendum "Refunds"), keyed by its merchant and out_refund_no. */
export interface StoredRefund {
  /** The sub-order's merchant: the one that refunded (out_refund_no is unique per merchant). */
  mchid: string;
  out_refund_no: string;
  refund_id: string;
  out_trade_no: string;
  transaction_id: string;
  /** fen */
  total: number;
  refund: number;
  reason?: string;
  notify_url: string;
  /** Canonical JSON of the request: the same out_refund_no must mean the same refund. */
  fingerprint: string;
  /** Business-clock milliseconds. */
  created_at: number;
  status: 'PROCESSING' | 'SUCCESS' | 'ABNORMAL' | 'CLOSED';
  /** The status it will settle to (SUCCESS unless armed otherwise). */
  outcome: 'SUCCESS' | 'ABNORMAL' | 'CLOSED';
  /** Real-clock milliseconds when PROCESSING settles. */
  due_at: number;
  final_at?: number;
  success_at?: number;
  user_received_account: string;
}

export function refundKey(mchid: string, outRefundNo: string): string {
  return `${mchid}/${outRefundNo}`;
}

export interface SandboxState {
  version: 1;
  clock_offset_seconds: number;
  orders: Record<string, StoredOrder>;
  pending: PendingDelivery[];
  deliveries: DeliveryLogEntry[];
  bill_adjustments: BillAdjustment[];
  bill_extras: BillExtra[];
  refunds: Record<string, StoredRefund>;
}

const MAX_LOG = 2000;

export type Synchronous = 'NORMAL' | 'FULL';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (no TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (notification_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bill_adjustments (out_trade_no TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bill_extras (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
`;

export class StateStore {
  readonly path: string;
  readonly state: SandboxState;
  private readonly db: Database.Database;
  private readonly stmt: {
    putMeta: Database.Statement;
    putOrder: Database.Statement;
    putPending: Database.Statement;
    delPending: Database.Statement;
    addDelivery: Database.Statement;
    trimDeliveries: Database.Statement;
    putAdjustment: Database.Statement;
    addExtra: Database.Statement;
    putRefund: Database.Statement;
  };

  constructor(sandboxDir: string, opts: { synchronous?: Synchronous } = {}) {
    this.path = join(sandboxDir, 'state.db');
    const legacy = join(sandboxDir, 'state.json');
    // Read a legacy file before anything is created, so a damaged one leaves no half-made database.
    const imported = existsSync(legacy) ? readLegacy(legacy) : undefined;
    // Created owner-only before SQLite opens it; the -wal and -shm files take the same mode.
    if (!existsSync(this.path)) closeSync(openSync(this.path, 'a', 0o600));
    chmodSync(this.path, 0o600);
    try {
      this.db = new Database(this.path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      this.db.pragma('busy_timeout = 2000');
      this.db.exec(SCHEMA);
    } catch (err) {
      throw new SandboxError('STATE_INVALID', `cannot open ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    for (const f of [`${this.path}-wal`, `${this.path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    this.stmt = {
      putMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      putOrder: this.db.prepare('INSERT INTO orders (no, doc) VALUES (?, ?) ON CONFLICT(no) DO UPDATE SET doc = excluded.doc'),
      putPending: this.db.prepare('INSERT INTO pending (notification_id, doc) VALUES (?, ?) ON CONFLICT(notification_id) DO UPDATE SET doc = excluded.doc'),
      delPending: this.db.prepare('DELETE FROM pending WHERE notification_id = ?'),
      addDelivery: this.db.prepare('INSERT INTO deliveries (doc) VALUES (?)'),
      trimDeliveries: this.db.prepare('DELETE FROM deliveries WHERE id <= (SELECT MAX(id) FROM deliveries) - ?'),
      putAdjustment: this.db.prepare('INSERT INTO bill_adjustments (out_trade_no, doc) VALUES (?, ?) ON CONFLICT(out_trade_no) DO UPDATE SET doc = excluded.doc'),
      addExtra: this.db.prepare('INSERT INTO bill_extras (doc) VALUES (?)'),
      putRefund: this.db.prepare('INSERT INTO refunds (key, doc) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET doc = excluded.doc'),
    };
    if (imported) {
      if (this.db.prepare("SELECT value FROM meta WHERE key = 'imported_state_json'").get() === undefined) this.importLegacy(imported);
      // Imported now or by a run that died before the rename: the database holds it.
      renameSync(legacy, `${legacy}.migrated`);
    }
    this.state = this.load();
  }

  private importLegacy(s: SandboxState): void {
    this.transaction(() => {
      this.stmt.putMeta.run('clock_offset_seconds', String(s.clock_offset_seconds ?? 0));
      for (const o of Object.values(s.orders)) this.putOrder(o);
      for (const p of s.pending ?? []) this.putPending(p);
      for (const d of s.deliveries ?? []) this.stmt.addDelivery.run(JSON.stringify(d));
      for (const a of s.bill_adjustments ?? []) this.stmt.putAdjustment.run(a.out_trade_no, JSON.stringify(a));
      for (const x of s.bill_extras ?? []) this.stmt.addExtra.run(JSON.stringify(x));
      this.stmt.putMeta.run('imported_state_json', new Date().toISOString());
    });
  }

  private load(): SandboxState {
    const docs = <T>(sql: string) => (this.db.prepare(sql).all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as T);
    const clock = this.db.prepare("SELECT value FROM meta WHERE key = 'clock_offset_seconds'").get() as { value: string } | undefined;
    const orders: Record<string, StoredOrder> = {};
    for (const o of docs<StoredOrder>('SELECT doc FROM orders ORDER BY rowid')) orders[orderKey(o)] = o;
    return {
      version: 1,
      clock_offset_seconds: clock ? Number(clock.value) : 0,
      orders,
      pending: docs<PendingDelivery>('SELECT doc FROM pending ORDER BY rowid'),
      deliveries: docs<DeliveryLogEntry>(`SELECT doc FROM deliveries ORDER BY id DESC LIMIT ${MAX_LOG}`).reverse(),
      bill_adjustments: docs<BillAdjustment>('SELECT doc FROM bill_adjustments ORDER BY rowid'),
      bill_extras: docs<BillExtra>('SELECT doc FROM bill_extras ORDER BY id'),
      refunds: Object.fromEntries(docs<StoredRefund>('SELECT doc FROM refunds ORDER BY rowid').map((r) => [refundKey(r.mchid, r.out_refund_no), r])),
    };
  }

  /** Runs `fn` as one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  setClockOffset(seconds: number): void {
    this.stmt.putMeta.run('clock_offset_seconds', String(seconds));
    this.state.clock_offset_seconds = seconds;
  }

  /** Writes the order's current document (call after every change to it). */
  putOrder(o: StoredOrder): void {
    this.stmt.putOrder.run(orderKey(o), JSON.stringify(o));
  }

  putPending(p: PendingDelivery): void {
    this.stmt.putPending.run(p.notification_id, JSON.stringify(p));
  }

  deletePending(p: PendingDelivery): void {
    this.stmt.delPending.run(p.notification_id);
    const i = this.state.pending.indexOf(p);
    if (i >= 0) this.state.pending.splice(i, 1);
  }

  addDelivery(e: DeliveryLogEntry): void {
    const r = this.stmt.addDelivery.run(JSON.stringify(e));
    if (Number(r.lastInsertRowid) % 100 === 0) this.stmt.trimDeliveries.run(MAX_LOG);
    this.state.deliveries.push(e);
    if (this.state.deliveries.length > MAX_LOG) this.state.deliveries.splice(0, this.state.deliveries.length - MAX_LOG);
  }

  putAdjustment(a: BillAdjustment): void {
    this.stmt.putAdjustment.run(a.out_trade_no, JSON.stringify(a));
    this.state.bill_adjustments = this.state.bill_adjustments.filter((x) => x.out_trade_no !== a.out_trade_no).concat(a);
  }

  addExtra(x: BillExtra): void {
    this.stmt.addExtra.run(JSON.stringify(x));
    this.state.bill_extras.push(x);
  }

  /** Writes the refund's current document and holds it in memory. */
  putRefund(r: StoredRefund): void {
    const key = refundKey(r.mchid, r.out_refund_no);
    this.stmt.putRefund.run(key, JSON.stringify(r));
    this.state.refunds[key] = r;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function readLegacy(path: string): SandboxState {
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as SandboxState;
    if (s.version !== 1 || typeof s.orders !== 'object' || s.orders === null) throw new Error('unknown layout');
    return s;
  } catch (err) {
    throw new SandboxError('STATE_INVALID', `cannot import ${path} into state.db (fix or remove it): ${(err as Error).message}`);
  }
}
