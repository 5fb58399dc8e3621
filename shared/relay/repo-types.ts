/**
 * The relay's store seam (issue 14): every statement the relay runs sits behind these async
 * repositories, with one implementation per engine — SQLite (`./sqlite/`, the embedded default,
 * one relay process) and PostgreSQL (`./pg/`, one or more relay processes on one database).
 * The services (orders.ts, notify.ts, refunds.ts, reconcile.ts, events.ts, bills.ts, counter
 * routes) hold the logic and call only this; they never see a connection or a statement.
 *
 * Rules every implementation keeps (the shared suite test/relay/store-contract.test.ts checks them
 * on both engines):
 * - each method is atomic: what it writes is in ONE transaction, and a method that decides inside a
 *   transaction takes the decision as a pure synchronous callback (`decide`, `check`), run on rows
 *   read inside that transaction;
 * - every change to what an Order object shows gets a new change-feed cursor in the same
 *   transaction; the Change reaches `feed.onChange` listeners after the commit, in cursor order,
 *   on every relay process sharing the database (SQLite: in process; PostgreSQL: LISTEN/NOTIFY as
 *   the wake-up, the orders table as the truth);
 * - "claim" methods hand a piece of work to one caller at a time across processes (a lease: the
 *   row's next check moved to now + leaseMs in the claiming transaction), so two relays never query,
 *   close or refund the same thing at once, and work whose relay died comes due again by itself.
 */
import type { Alert, Order, OrderCreation, OrderKind, OrderState } from '../contracts/relay-api';
import type { RefundsRepo } from './repo-refunds';
import type { CounterRepo } from './repo-counter';
import type { BillsRepo } from './repo-bills';

// ─── rows ──────────────────────────────────────────────────────────────────────────────────

export interface OrderRow {
  combine_out_trade_no: string;
  /** `single`: basic Native with the one merchant's keys; `combine`: the initiator's combined order. */
  kind: OrderKind;
  state: OrderState;
  total_amount: number;
  description: string | null;
  code_url: string | null;
  created_at: string;
  created_ms: number;
  expires_at: string;
  expires_ms: number;
  paid_at: string | null;
  paid_ms: number | null;
  closed_at: string | null;
  updated_ms: number;
  terminal: string;
  creation: OrderCreation;
  error_code: string | null;
  error_message: string | null;
  idempotency_key: string | null;
  request_hash: string;
  /** The exact create body while a (re-)send may be needed; '' once WeChat Pay created it. */
  request_json: string;
  version: number;
  watch: number;
  next_check_ms: number;
  check_attempts: number;
  cursor: number;
  transaction_ids: string | null;
}

/** What a sub-order was created with (its state and transaction id live on the order row). */
export interface SubOrderRow {
  out_trade_no: string;
  combine_out_trade_no: string;
  idx: number;
  mchid: string;
  description: string;
  amount: number;
  attach: string | null;
}

export interface NewOrder {
  row: Omit<OrderRow, 'kind' | 'version' | 'check_attempts' | 'paid_at' | 'paid_ms' | 'closed_at' | 'code_url' | 'error_code' | 'error_message' | 'cursor' | 'transaction_ids'> & { kind?: OrderKind };
  subs: SubOrderRow[];
}

/** A transition computed from WeChat's view of the order. */
export interface Transition {
  state: OrderState;
  paidMs?: number | null;
  /** per out_trade_no */
  transactionIds?: Map<string, string | null>;
}

/** One change of the feed: the order's state as of `cursor` (built once, shared by every listener). */
export interface Change {
  readonly cursor: number;
  readonly order: Order;
}

export type ChangeListener = (change: Change) => void;

export interface SnapshotBounds {
  maxOpen: number;
  recent: number;
  /** Only this terminal's orders (a cashier's snapshot); every terminal's when undefined. */
  terminal?: string;
}

export interface ListFilter {
  state?: OrderState;
  olderThanMinutes?: number;
  q?: string;
  dateStartMs?: number;
  terminal?: string;
  open?: boolean;
  limit: number;
}

// ─── orders ────────────────────────────────────────────────────────────────────────────────

export interface OrdersRepo {
  row(no: string): Promise<OrderRow | undefined>;
  subRows(no: string): Promise<SubOrderRow[]>;
  /** The sub-order with this number (a basic Native order's out_trade_no), if it is ours. */
  subByNo(outTradeNo: string): Promise<SubOrderRow | undefined>;
  get(no: string): Promise<Order | undefined>;
  /** Orders for rows (sub-orders and refunds read in one statement each, not one per order). */
  toOrders(rows: OrderRow[]): Promise<Order[]>;
  byIdempotencyKey(terminal: string, key: string): Promise<OrderRow | undefined>;
  /**
   * Recorded before WeChat Pay is called. false: (terminal, idempotency_key) is taken — another
   * request (maybe on another relay) recorded it first; read it with byIdempotencyKey.
   */
  insert(o: NewOrder): Promise<boolean>;
  /** WeChat Pay created it: code_url, creation CREATED; the order as of that change (null: unknown). */
  markCreated(no: string, codeUrl: string, now?: number): Promise<Order | null>;
  /** `watch`: keep following it (an ambiguous failure: WeChat may have created it). */
  markFailed(no: string, code: string, message: string, watch: boolean, now?: number): Promise<Order | null>;
  /**
   * The query/close path of the one state change: only from a non-final state to another state.
   * true when it changed (then the change is in the feed).
   */
  transition(no: string, t: Transition, now?: number): Promise<boolean>;
  /** Next check at `atMs` (check_attempts + 1). */
  schedule(no: string, atMs: number): Promise<void>;
  unwatch(no: string): Promise<void>;
  /** Final orders leave the reconciler's watch list. */
  unwatchFinal(): Promise<void>;
  /**
   * Up to `limit` watched orders due at `now`, each leased to the caller: its next_check_ms is
   * moved to now + leaseMs in the same transaction (PostgreSQL: FOR UPDATE SKIP LOCKED), so no
   * other relay claims it until the caller reschedules it or the lease runs out.
   */
  claimDue(now: number, limit: number, leaseMs: number): Promise<string[]>;
  /**
   * On start. SQLite (one process): creates a previous process left PENDING are due at once.
   * PostgreSQL: nothing (another relay may be sending them; their lease brings them due).
   */
  resumePending(): Promise<void>;
  list(f: ListFilter): Promise<Order[]>;
  /** Paid sub-orders per merchant for a Beijing day (paid time). */
  takings(dayStartMs: number): Promise<{ mchid: string; amount: number; count: number }[]>;
}

// ─── payment notifications ─────────────────────────────────────────────────────────────────

export type PaymentApplyResult =
  | { kind: 'unknown' }
  | { kind: 'mismatch'; alertKind: string; message: string }
  | { kind: 'duplicate' }
  /** changed: false when the order was already in (or past) that state: the id is kept. */
  | { kind: 'applied'; changed: boolean; state: OrderState };

export interface PaymentNotification {
  id: string;
  eventType: string;
  /** The relay's order number (combine_out_trade_no), found from a basic payment's sub-order. */
  no: string;
  /** subKey() of the notification's sub-orders; null when no fast path applies. */
  key: string | null;
  transition: Transition;
  /**
   * Run inside the transaction only when the fast path changed nothing: the stored order and its
   * sub-orders → null (already final: keep the id) or a refusal (roll back: id not kept).
   */
  check(row: OrderRow, subs: SubOrderRow[]): { alertKind: string; message: string } | null;
}

export interface NotificationsRepo {
  /**
   * ONE transaction: the id under a unique key (a duplicate, on any relay, stops here) and the
   * state change only from a non-final state. Answer the notification only after this resolved.
   */
  applyPayment(n: PaymentNotification): Promise<PaymentApplyResult>;
}

// ─── terminals, alerts, audit ──────────────────────────────────────────────────────────────

export interface TerminalRecord {
  name: string;
  role: 'cashier' | 'manager';
}

export interface TerminalsRepo {
  /** false: the name is taken. */
  create(name: string, role: 'cashier' | 'manager', tokenHash: string, at: string): Promise<boolean>;
  byTokenHash(tokenHash: string): Promise<TerminalRecord | null>;
}

export interface AlertsRepo {
  /** Stored once per dedupe key; the alert when new. */
  add(kind: string, no: string | null, message: string, dedupeKey: string | null, now?: number): Promise<Alert | null>;
  list(limit: number): Promise<Alert[]>;
}

export interface AuditRepo {
  add(terminal: string, action: string, target: string | null, detail: unknown): Promise<void>;
}

// ─── change feed ───────────────────────────────────────────────────────────────────────────

export interface ChangeFeed {
  /** Listeners get every change once, in cursor order, after its commit (any relay's). */
  onChange(l: ChangeListener): void;
  /** The last cursor delivered to this process's listeners (memory, no query). */
  cursor(): number;
  /**
   * Delivers every change committed so far (PostgreSQL: reads the feed now, whatever LISTEN
   * said); afterwards cursor() ≥ any cursor another relay has handed a terminal.
   */
  catchUp(): Promise<void>;
  /**
   * Orders changed after `since` (latest state once each), oldest change first, at most `max`.
   * null when `since` is beyond cursor() or more than `max` orders changed: start from a snapshot.
   */
  changedRowsSince(since: number, max: number): Promise<OrderRow[] | null>;
  /**
   * Open orders (newest maxOpen) and recently changed ones (`recent`, within the past hour),
   * newest first; one terminal's when `terminal` is given. Rows as of one moment.
   */
  snapshotRows(o: SnapshotBounds, now?: number): Promise<OrderRow[]>;
}

// ─── event sockets across relays ──────────────────────────────────────────────────────────

/**
 * RELAY_EVENTS_PER_TERMINAL across relay processes (PostgreSQL only; one SQLite relay sees all its
 * sockets itself). A terminal's newest sockets stay; older ones beyond the limit are closed by
 * whichever relay holds them.
 */
export interface SocketsRepo {
  /**
   * Records a new socket; the ids (oldest first) of this terminal's sockets beyond `limit`, now
   * forgotten; those on other relays (`local: false`) were asked to close already.
   */
  opened(terminal: string, id: string, limit: number, now?: number): Promise<{ id: string; local: boolean }[]>;
  closed(id: string): Promise<void>;
  /** This relay is asked to close one of its sockets. */
  onCloseRequest(l: (id: string) => void): void;
}

// ─── the whole store ───────────────────────────────────────────────────────────────────────

export interface StoreHealth {
  ok: boolean;
  engine: 'sqlite' | 'postgresql';
  /** Why not ok (the database is unreachable, …); never a secret. */
  error?: string;
  /** Round trip of the check, ms. */
  latency_ms?: number;
}

export interface RelayStore {
  readonly engine: 'sqlite' | 'postgresql';
  readonly orders: OrdersRepo;
  readonly notifications: NotificationsRepo;
  readonly terminals: TerminalsRepo;
  readonly alerts: AlertsRepo;
  readonly audit: AuditRepo;
  readonly feed: ChangeFeed;
  /** Refunds per sub-order (repo-refunds.ts). */
  readonly refunds: RefundsRepo;
  /** Shifts, manager PIN, order timeline, reports (repo-counter.ts). */
  readonly counter: CounterRepo;
  /** Bill runs: staging, comparison pages, reports (repo-bills.ts). */
  readonly bills: BillsRepo;
  /** Event sockets across relays (PostgreSQL); absent on SQLite (one process). */
  readonly sockets?: SocketsRepo;
  health(): Promise<StoreHealth>;
  /** After in-flight work finished: stop the feed, close connections. */
  close(): Promise<void>;
}
