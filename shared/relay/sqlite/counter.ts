/**
 * The counter repositories on SQLite (repo-counter.ts): one relay process, synchronous
 * better-sqlite3 statements behind async methods; a method's statements run in one transaction
 * that never spans an await. The INDEXED BY hints keep each report on its own orders (db.ts
 * migrations 5–7), not the history.
 */
import type { Statement } from 'better-sqlite3';
import type { ReportTotals } from '../../contracts/counter-api';
import type { Db } from '../db';
import {
  firstMiss, MISS_SQL, missResult,
  type CounterRepo, type DayFigures, type ElevationRecord, type MerchantSales, type MissResult, type OpenShiftResult, type PaidFigures,
  type PinGuard, type PinRecord, type PinRepo, type ReportsRepo, type ShiftFigures, type ShiftRow, type ShiftsRepo, type TimelineData,
  type TimelineOrderRow, type TimelineRepo,
} from '../repo-counter';
import type { OrderStore } from '../store';

type St = Statement<unknown[]>;

class SqlitePin implements PinRepo {
  private readonly s: Record<string, St>;

  constructor(private readonly db: Db) {
    const q = (n: number) => `@p${n}`;
    this.s = {
      get: db.prepare('SELECT hash, salt, set_at, set_by FROM manager_pin WHERE id = 1'),
      set: db.prepare(`INSERT INTO manager_pin (id, hash, salt, set_at, set_by) VALUES (1, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, salt = excluded.salt, set_at = excluded.set_at, set_by = excluded.set_by`),
      clearGuards: db.prepare('DELETE FROM pin_guard'),
      clearElevations: db.prepare('DELETE FROM manager_elevations'),
      guard: db.prepare('SELECT failures, locked_until_ms FROM pin_guard WHERE terminal = ?'),
      miss: db.prepare(MISS_SQL(q)),
      unguard: db.prepare('DELETE FROM pin_guard WHERE terminal = ? AND locked_until_ms <= ?'),
      sweep: db.prepare('DELETE FROM manager_elevations WHERE expires_ms <= ?'),
      elevate: db.prepare('INSERT INTO manager_elevations (hash, terminal, expires_ms) VALUES (?, ?, ?)'),
      elevation: db.prepare('SELECT terminal, expires_ms FROM manager_elevations WHERE hash = ?'),
      endElevation: db.prepare('DELETE FROM manager_elevations WHERE hash = ? AND terminal = ?'),
    };
  }

  async get(): Promise<PinRecord | null> {
    return (this.s.get!.get() as PinRecord | undefined) ?? null;
  }

  async set(p: PinRecord): Promise<void> {
    this.db.transaction(() => {
      this.s.set!.run(p.hash, p.salt, p.set_at, p.set_by);
      this.s.clearGuards!.run();
      this.s.clearElevations!.run();
    }).immediate();
  }

  async guard(terminal: string): Promise<PinGuard | null> {
    return (this.s.guard!.get(terminal) as PinGuard | undefined) ?? null;
  }

  async miss(terminal: string, maxFailures: number, lockUntilMs: number, now: number): Promise<MissResult> {
    return this.db.transaction((): MissResult => {
      const [failures, locked] = firstMiss(maxFailures, lockUntilMs);
      const r = this.s.miss!.get({ p1: terminal, p2: failures, p3: locked, p4: maxFailures, p5: lockUntilMs, p6: now }) as { failures: number; locked_until_ms: number } | undefined;
      if (r) return missResult(r, maxFailures);
      // Not counted: the row exists and is locked (one writer: it cannot vanish in between).
      const g = this.s.guard!.get(terminal) as PinGuard;
      return { kind: 'locked', locked_until_ms: g.locked_until_ms };
    }).immediate();
  }

  async elevate(terminal: string, elevationHash: string, expiresMs: number, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      this.s.unguard!.run(terminal, now);
      if (this.s.guard!.get(terminal)) return false; // still there: locked
      this.s.sweep!.run(now);
      this.s.elevate!.run(elevationHash, terminal, expiresMs);
      return true;
    }).immediate();
  }

  async elevation(elevationHash: string): Promise<ElevationRecord | null> {
    return (this.s.elevation!.get(elevationHash) as ElevationRecord | undefined) ?? null;
  }

  async endElevation(terminal: string, elevationHash: string): Promise<void> {
    this.s.endElevation!.run(elevationHash, terminal);
  }
}

class SqliteShifts implements ShiftsRepo {
  private readonly s: Record<string, St>;

  constructor(private readonly db: Db) {
    this.s = {
      get: db.prepare('SELECT * FROM shifts WHERE id = ?'),
      current: db.prepare('SELECT * FROM shifts WHERE terminal = ? AND closed_ms IS NULL'),
      // The partial unique index (db.ts migration 9) is the arbiter: a second open finds it taken.
      open: db.prepare(`INSERT INTO shifts (terminal, cashier, opened_at, opened_ms) VALUES (?, ?, ?, ?)
        ON CONFLICT (terminal) WHERE closed_ms IS NULL DO NOTHING RETURNING *`),
      close: db.prepare('UPDATE shifts SET closed_at = ?, closed_ms = ?, closed_by = ?, report = ? WHERE id = ? AND closed_ms IS NULL'),
      between: db.prepare('SELECT * FROM shifts WHERE opened_ms >= ? AND opened_ms < ? ORDER BY opened_ms, id'),
    };
  }

  async get(id: number): Promise<ShiftRow | undefined> {
    return this.s.get!.get(id) as ShiftRow | undefined;
  }

  async current(terminal: string): Promise<ShiftRow | undefined> {
    return this.s.current!.get(terminal) as ShiftRow | undefined;
  }

  async open(terminal: string, cashier: string, openedAt: string, openedMs: number): Promise<OpenShiftResult> {
    return this.db.transaction((): OpenShiftResult => {
      const row = this.s.open!.get(terminal, cashier, openedAt, openedMs) as ShiftRow | undefined;
      if (row) return { ok: true, shift: row };
      return { ok: false, open: (this.s.current!.get(terminal) as ShiftRow | undefined) ?? null };
    }).immediate();
  }

  async close(id: number, closedAt: string, closedMs: number, by: string, reportJson: string): Promise<boolean> {
    return this.s.close!.run(closedAt, closedMs, by, reportJson, id).changes > 0;
  }

  async between(fromMs: number, toMs: number): Promise<ShiftRow[]> {
    return this.s.between!.all(fromMs, toMs) as ShiftRow[];
  }
}

class SqliteTimeline implements TimelineRepo {
  // Prepared once: printed events arrive with every sale.
  private readonly s: Record<string, St>;

  constructor(private readonly db: Db) {
    this.s = {
      record: db.prepare(`INSERT INTO order_events (combine_out_trade_no, at, terminal, type, detail)
        SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM orders WHERE combine_out_trade_no = ?)`),
      order: db.prepare(`SELECT combine_out_trade_no, state, created_at, paid_at, closed_at, terminal, creation, error_code, error_message,
        transaction_ids, paid_via FROM orders WHERE combine_out_trade_no = ?`),
      events: db.prepare('SELECT at, terminal, type, detail FROM order_events WHERE combine_out_trade_no = ? ORDER BY id'),
      audit: db.prepare('SELECT at, terminal, action, detail FROM audit_log WHERE target = ? ORDER BY id'),
      refunds: db.prepare(`SELECT out_refund_no, out_trade_no, mchid, amount, status, success_time, refund_id FROM refunds
        WHERE combine_out_trade_no = ? AND status = 'SUCCESS' AND success_time IS NOT NULL ORDER BY created_ms, out_refund_no`),
    };
  }

  async record(no: string, at: string, terminal: string, type: string, detail: string): Promise<boolean> {
    return this.s.record!.run(no, at, terminal, type, detail, no).changes > 0;
  }

  async get(no: string): Promise<TimelineData | null> {
    return this.db.transaction((): TimelineData | null => {
      const order = this.s.order!.get(no) as TimelineOrderRow | undefined;
      if (!order) return null;
      return {
        order,
        events: this.s.events!.all(no) as TimelineData['events'],
        audit: this.s.audit!.all(no) as TimelineData['audit'],
        refunds: this.s.refunds!.all(no) as TimelineData['refunds'],
      };
    })();
  }
}

// A sale counts once per order, and once per merchant it contains (COUNT DISTINCT over the join).
const PAID = "FROM orders o INDEXED BY orders_paid_success WHERE o.state = 'SUCCESS' AND o.paid_ms >= ? AND o.paid_ms < ?";
const SHIFT_SALES = "FROM orders o INDEXED BY orders_terminal WHERE o.terminal = ? AND o.created_ms >= ? AND o.created_ms < ? AND o.state = 'SUCCESS'";
const bySubs = (where: string) => `SELECT s.mchid AS mchid, COUNT(DISTINCT o.combine_out_trade_no) AS count, SUM(s.amount) AS amount
  ${where.replace('WHERE', 'JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no WHERE')} GROUP BY s.mchid ORDER BY s.mchid`;

class SqliteReports implements ReportsRepo {
  private readonly s: Record<string, St>;

  constructor(private readonly db: Db) {
    this.s = {
      shiftSales: db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(o.total_amount), 0) AS amount ${SHIFT_SALES}`),
      shiftMerchants: db.prepare(bySubs(SHIFT_SALES)),
      openOf: db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(total_amount), 0) AS amount FROM orders INDEXED BY orders_open
        WHERE state IN ('NOTPAY','USERPAYING') AND creation != 'FAILED' AND terminal = ?`),
      unpaid: db.prepare(`SELECT COALESCE(SUM(creation != 'FAILED' AND state = 'CLOSED'), 0) AS closed,
        COALESCE(SUM(creation = 'FAILED' OR state = 'PAYERROR'), 0) AS failed
        FROM orders INDEXED BY orders_terminal WHERE terminal = ? AND created_ms >= ? AND created_ms < ?`),
      paid: db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(o.total_amount), 0) AS amount ${PAID}`),
      paidMerchants: db.prepare(bySubs(PAID)),
      terminals: db.prepare(`SELECT o.terminal AS terminal, COUNT(*) AS count, SUM(o.total_amount) AS amount ${PAID} GROUP BY o.terminal ORDER BY o.terminal`),
      openCreated: db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(total_amount), 0) AS amount FROM orders INDEXED BY orders_open
        WHERE state IN ('NOTPAY','USERPAYING') AND creation != 'FAILED' AND created_ms >= ? AND created_ms < ?`),
      billRun: db.prepare('SELECT at, report FROM bill_runs WHERE bill_date = ? ORDER BY id DESC LIMIT 1'),
    };
  }

  async shift(terminal: string, fromMs: number, toMs: number): Promise<ShiftFigures> {
    return this.db.transaction((): ShiftFigures => ({
      sales: this.s.shiftSales!.get(terminal, fromMs, toMs) as ReportTotals,
      merchants: this.s.shiftMerchants!.all(terminal, fromMs, toMs) as MerchantSales[],
      open: this.s.openOf!.get(terminal) as ReportTotals,
      unpaid: this.s.unpaid!.get(terminal, fromMs, toMs) as { closed: number; failed: number },
    }))();
  }

  private paidNow(fromMs: number, toMs: number): PaidFigures {
    return {
      sales: this.s.paid!.get(fromMs, toMs) as ReportTotals,
      merchants: this.s.paidMerchants!.all(fromMs, toMs) as MerchantSales[],
    };
  }

  async paid(fromMs: number, toMs: number): Promise<PaidFigures> {
    return this.db.transaction(() => this.paidNow(fromMs, toMs))();
  }

  async day(fromMs: number, toMs: number): Promise<DayFigures> {
    return this.db.transaction((): DayFigures => ({
      ...this.paidNow(fromMs, toMs),
      terminals: this.s.terminals!.all(fromMs, toMs) as DayFigures['terminals'],
      open: this.s.openCreated!.get(fromMs, toMs) as ReportTotals,
    }))();
  }

  async lastBillRun(billDate: string): Promise<{ at: string; report: string } | null> {
    return (this.s.billRun!.get(billDate) as { at: string; report: string } | undefined) ?? null;
  }
}

export class SqliteCounter implements CounterRepo {
  readonly pin: PinRepo;
  readonly shifts: ShiftsRepo;
  readonly timeline: TimelineRepo;
  readonly reports: ReportsRepo;

  // `core` is the engine's OrderStore (the seam's convention); counter rows change no Order object.
  constructor(db: Db, _core: OrderStore) {
    this.pin = new SqlitePin(db);
    this.shifts = new SqliteShifts(db);
    this.timeline = new SqliteTimeline(db);
    this.reports = new SqliteReports(db);
  }
}
