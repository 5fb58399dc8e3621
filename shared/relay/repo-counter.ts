/**
 * The counter part of the store seam (repo-types.ts): manager PIN and elevations, shifts, the
 * order timeline and the report queries, one implementation per engine (sqlite/counter.ts,
 * pg/counter.ts). Every method is atomic (one transaction, or one statement); the decisions —
 * scrypt, lock rules, report assembly, CSV — stay in the services (pin.ts, shifts.ts,
 * timeline.ts, reports.ts). Several relays may share one PostgreSQL: whatever one relay decided
 * (a miss, a lock, an elevation, an open shift) holds on every other at once.
 */
import type { ReportTotals } from '../contracts/counter-api';

// ─── manager PIN and elevations ────────────────────────────────────────────────────────────

export interface PinRecord {
  /** scrypt of the PIN, hex. */
  hash: string;
  /** hex */
  salt: string;
  set_at: string;
  set_by: string;
}

export interface PinGuard {
  failures: number;
  /** 0 when not locked (a lock ends by time: compare with now). */
  locked_until_ms: number;
}

/** What one wrong PIN did to the terminal's guard (decided inside the counting statement). */
export type MissResult =
  /** counted: `failures` misses now (this one included); `lockedNow`: it reached the limit and locked the terminal */
  | { kind: 'counted'; failures: number; lockedNow: boolean }
  /** the terminal was locked meanwhile (a miss on another relay): nothing counted */
  | { kind: 'locked'; locked_until_ms: number };

/** A stored elevation, found by the SHA-256 of its value (the value itself is never stored). */
export interface ElevationRecord {
  terminal: string;
  expires_ms: number;
}

export interface PinRepo {
  get(): Promise<PinRecord | null>;
  /** Stores the PIN; earlier misses, locks and every elevation end in the same transaction. */
  set(p: PinRecord): Promise<void>;
  guard(terminal: string): Promise<PinGuard | null>;
  /**
   * One wrong PIN, counted atomically (concurrent misses on any relay each count once): when the
   * count reaches `maxFailures` the terminal locks until `lockUntilMs` and its count goes back to
   * 0 (after the lock, counting starts again). A terminal locked at `now` is left as it is.
   */
  miss(terminal: string, maxFailures: number, lockUntilMs: number, now: number): Promise<MissResult>;
  /**
   * The right PIN: clears the terminal's misses and stores the elevation (expired ones are swept).
   * false, storing nothing, when the terminal is locked at `now` (a lock another relay set while
   * this PIN was being checked).
   */
  elevate(terminal: string, elevationHash: string, expiresMs: number, now: number): Promise<boolean>;
  elevation(elevationHash: string): Promise<ElevationRecord | null>;
  /** Ends that elevation if it was given to `terminal` (on every relay: they all read the table). */
  endElevation(terminal: string, elevationHash: string): Promise<void>;
}

// ─── shifts ────────────────────────────────────────────────────────────────────────────────

export interface ShiftRow {
  id: number;
  terminal: string;
  cashier: string;
  opened_at: string;
  opened_ms: number;
  closed_at: string | null;
  closed_ms: number | null;
  closed_by: string | null;
  /** JSON of the ShiftReport stored at the close. */
  report: string | null;
}

export type OpenShiftResult =
  | { ok: true; shift: ShiftRow }
  /** The terminal has an open shift (found, or null when it was closed again in between). */
  | { ok: false; open: ShiftRow | null };

export interface ShiftsRepo {
  get(id: number): Promise<ShiftRow | undefined>;
  /** The terminal's open shift. */
  current(terminal: string): Promise<ShiftRow | undefined>;
  /** Opens one unless the terminal has one open — also when another relay opens one at the same moment. */
  open(terminal: string, cashier: string, openedAt: string, openedMs: number): Promise<OpenShiftResult>;
  /** Closes it with its report (JSON) if still open; false when it was closed already. */
  close(id: number, closedAt: string, closedMs: number, by: string, reportJson: string): Promise<boolean>;
  /** Shifts opened in [fromMs, toMs), oldest first. */
  between(fromMs: number, toMs: number): Promise<ShiftRow[]>;
}

// ─── order timeline ────────────────────────────────────────────────────────────────────────

export interface TimelineOrderRow {
  combine_out_trade_no: string;
  state: string;
  created_at: string;
  paid_at: string | null;
  closed_at: string | null;
  terminal: string;
  creation: string;
  error_code: string | null;
  error_message: string | null;
  transaction_ids: string | null;
  paid_via: string | null;
}

export interface TimelineData {
  order: TimelineOrderRow;
  /** Terminal-reported events, in the order they were recorded. */
  events: { at: string; terminal: string; type: string; detail: string | null }[];
  /** Audit entries naming the order, oldest first. */
  audit: { at: string; terminal: string; action: string; detail: string | null }[];
  /** Its SUCCESS refunds with a success time, by creation. */
  refunds: { out_refund_no: string; out_trade_no: string; mchid: string; amount: number; status: string; success_time: string; refund_id: string | null }[];
}

export interface TimelineRepo {
  /** Records a terminal-reported event; false (nothing stored) when there is no such order. */
  record(no: string, at: string, terminal: string, type: string, detail: string): Promise<boolean>;
  /** Everything the timeline is made of, as of one moment; null for an unknown order. */
  get(no: string): Promise<TimelineData | null>;
}

// ─── report queries ────────────────────────────────────────────────────────────────────────

/** Paid sales with a sub-order of one merchant (count: orders, not sub-orders) and its fen. */
export interface MerchantSales {
  mchid: string;
  count: number;
  amount: number;
}

export interface ShiftFigures {
  /** The terminal's orders created in [from, to) and paid. */
  sales: ReportTotals;
  merchants: MerchantSales[];
  /** The terminal's orders waiting for payment now (not failed at creation), whenever created. */
  open: ReportTotals;
  /** The terminal's orders created in [from, to) that ended closed unpaid / failed. */
  unpaid: { closed: number; failed: number };
}

export interface PaidFigures {
  /** Orders paid in [from, to) (paid time). */
  sales: ReportTotals;
  merchants: MerchantSales[];
}

export interface DayFigures extends PaidFigures {
  /** Paid in [from, to) per terminal, by terminal name. */
  terminals: { terminal: string; count: number; amount: number }[];
  /** Orders created in [from, to) still waiting for payment (not failed at creation). */
  open: ReportTotals;
}

export interface ReportsRepo {
  shift(terminal: string, fromMs: number, toMs: number): Promise<ShiftFigures>;
  paid(fromMs: number, toMs: number): Promise<PaidFigures>;
  day(fromMs: number, toMs: number): Promise<DayFigures>;
  /** The day's last bill run (its ReconciliationReport as JSON), or null. */
  lastBillRun(billDate: string): Promise<{ at: string; report: string } | null>;
}

// ─── shared by both implementations ────────────────────────────────────────────────────────

/**
 * The counting statement of PinRepo.miss (the same text on both engines; `p(n)` writes
 * parameter n): + 1, or the lock at the limit with the count back to 0; nothing (no row
 * returned) while a lock holds. Parameters: terminal, the first miss's failures and lock
 * (firstMiss), maxFailures, lockUntilMs, now.
 */
export const MISS_SQL = (p: (n: number) => string) => `INSERT INTO pin_guard AS g (terminal, failures, locked_until_ms) VALUES (${p(1)}, ${p(2)}, ${p(3)})
  ON CONFLICT (terminal) DO UPDATE SET
    failures = CASE WHEN g.failures + 1 >= ${p(4)} THEN 0 ELSE g.failures + 1 END,
    locked_until_ms = CASE WHEN g.failures + 1 >= ${p(4)} THEN ${p(5)} ELSE 0 END
  WHERE g.locked_until_ms <= ${p(6)}
  RETURNING failures, locked_until_ms`;

/** A terminal's first miss (no guard row yet): the failures and lock the insert stores. */
export function firstMiss(maxFailures: number, lockUntilMs: number): [number, number] {
  return 1 >= maxFailures ? [0, lockUntilMs] : [1, 0];
}

/** The counting statement's row → what it did (a lock stores 0 misses: it was the limit-th). */
export function missResult(r: { failures: number | string; locked_until_ms: number | string }, maxFailures: number): MissResult {
  return Number(r.locked_until_ms) > 0
    ? { kind: 'counted', failures: maxFailures, lockedNow: true }
    : { kind: 'counted', failures: Number(r.failures), lockedNow: false };
}

export interface CounterRepo {
  readonly pin: PinRepo;
  readonly shifts: ShiftsRepo;
  readonly timeline: TimelineRepo;
  readonly reports: ReportsRepo;
}
