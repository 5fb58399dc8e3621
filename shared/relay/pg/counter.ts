/**
 * The counter repositories on PostgreSQL (repo-counter.ts), shared by every relay on the
 * database. What must hold across relays is decided by one statement or row lock, never by a
 * read then a write across an await: a wrong PIN is one INSERT … ON CONFLICT DO UPDATE … RETURNING
 * (concurrent misses on two relays each count), a right PIN clears the guard only when no lock
 * is there (a DELETE that waits for a concurrent miss's row and re-checks it), one open shift
 * per terminal is the partial unique index as the ON CONFLICT arbiter (no unique violation to
 * map), and elevations are rows every relay reads. Counter rows change no Order: no feed lock.
 * Reports and the timeline read in one REPEATABLE READ snapshot.
 */
import type { ReportTotals } from '../../contracts/counter-api';
import {
  firstMiss, MISS_SQL, missResult,
  type CounterRepo, type DayFigures, type ElevationRecord, type MerchantSales, type MissResult, type OpenShiftResult, type PaidFigures,
  type PinGuard, type PinRecord, type PinRepo, type ReportsRepo, type ShiftFigures, type ShiftRow, type ShiftsRepo, type TimelineData,
  type TimelineOrderRow, type TimelineRepo,
} from '../repo-counter';
import type { PgCore, Tx } from './core';

type Raw = Record<string, unknown>;

const num = (v: unknown): number => Number(v);
const totals = (r: Raw | undefined): ReportTotals => ({ count: num(r?.count ?? 0), amount: num(r?.amount ?? 0) });
const merchants = (rows: Raw[]): MerchantSales[] => rows.map((r) => ({ mchid: r.mchid as string, count: num(r.count), amount: num(r.amount) }));

function shiftRow(r: Raw): ShiftRow {
  return {
    id: num(r.id), terminal: r.terminal as string, cashier: r.cashier as string, opened_at: r.opened_at as string, opened_ms: num(r.opened_ms),
    closed_at: (r.closed_at as string | null) ?? null, closed_ms: r.closed_ms === null ? null : num(r.closed_ms),
    closed_by: (r.closed_by as string | null) ?? null, report: (r.report as string | null) ?? null,
  };
}

/** One consistent read of several statements. */
function snapshot<T>(core: PgCore, fn: (t: Tx) => Promise<T>): Promise<T> {
  return core.tx(async (t) => {
    await t.q('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    return fn(t);
  });
}

// Terminal name stays text; every other parameter is a count or epoch ms (BIGINT, past int4).
const MISS = MISS_SQL((n) => (n === 1 ? '$1' : `$${n}::bigint`));

class PgPin implements PinRepo {
  constructor(private readonly core: PgCore) {}

  async get(): Promise<PinRecord | null> {
    const [r] = await this.core.q<PinRecord>('SELECT hash, salt, set_at, set_by FROM manager_pin WHERE id = 1');
    return r ?? null;
  }

  async set(p: PinRecord): Promise<void> {
    await this.core.tx(async (t) => {
      await t.q(`INSERT INTO manager_pin (id, hash, salt, set_at, set_by) VALUES (1, $1, $2, $3, $4)
        ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, salt = excluded.salt, set_at = excluded.set_at, set_by = excluded.set_by`,
      [p.hash, p.salt, p.set_at, p.set_by]);
      await t.q('DELETE FROM pin_guard');
      await t.q('DELETE FROM manager_elevations');
    });
  }

  async guard(terminal: string): Promise<PinGuard | null> {
    const [r] = await this.core.q('SELECT failures, locked_until_ms FROM pin_guard WHERE terminal = $1', [terminal]);
    return r ? { failures: num(r.failures), locked_until_ms: num(r.locked_until_ms) } : null;
  }

  async miss(terminal: string, maxFailures: number, lockUntilMs: number, now: number): Promise<MissResult> {
    const [failures, locked] = firstMiss(maxFailures, lockUntilMs);
    return this.core.tx(async (t) => {
      // No row back: a lock holds. Read it; should a new PIN have deleted it in between, count again.
      for (let i = 0; i < 3; i++) {
        const [r] = await t.q(MISS, [terminal, failures, locked, maxFailures, lockUntilMs, now]);
        if (r) return missResult(r as { failures: number; locked_until_ms: string }, maxFailures);
        const [g] = await t.q('SELECT locked_until_ms FROM pin_guard WHERE terminal = $1', [terminal]);
        if (g) return { kind: 'locked', locked_until_ms: num(g.locked_until_ms) };
      }
      throw new Error(`pin_guard for ${terminal}: neither counted nor locked after 3 tries`);
    });
  }

  async elevate(terminal: string, elevationHash: string, expiresMs: number, now: number): Promise<boolean> {
    return this.core.tx(async (t) => {
      await t.q('DELETE FROM pin_guard WHERE terminal = $1 AND locked_until_ms <= $2', [terminal, now]);
      if ((await t.q('SELECT 1 FROM pin_guard WHERE terminal = $1', [terminal])).length) return false; // locked
      await t.q('DELETE FROM manager_elevations WHERE expires_ms <= $1', [now]);
      await t.q('INSERT INTO manager_elevations (hash, terminal, expires_ms) VALUES ($1, $2, $3)', [elevationHash, terminal, expiresMs]);
      return true;
    });
  }

  async elevation(elevationHash: string): Promise<ElevationRecord | null> {
    // Every elevated request asks: a named prepared statement.
    const r = await this.core.pool.query({ name: 'counter_elevation', text: 'SELECT terminal, expires_ms FROM manager_elevations WHERE hash = $1', values: [elevationHash] });
    const row = r.rows[0] as Raw | undefined;
    return row ? { terminal: row.terminal as string, expires_ms: num(row.expires_ms) } : null;
  }

  async endElevation(terminal: string, elevationHash: string): Promise<void> {
    await this.core.q('DELETE FROM manager_elevations WHERE hash = $1 AND terminal = $2', [elevationHash, terminal]);
  }
}

class PgShifts implements ShiftsRepo {
  constructor(private readonly core: PgCore) {}

  async get(id: number): Promise<ShiftRow | undefined> {
    const [r] = await this.core.q('SELECT * FROM shifts WHERE id = $1', [id]);
    return r ? shiftRow(r) : undefined;
  }

  async current(terminal: string): Promise<ShiftRow | undefined> {
    const [r] = await this.core.q('SELECT * FROM shifts WHERE terminal = $1 AND closed_ms IS NULL', [terminal]);
    return r ? shiftRow(r) : undefined;
  }

  async open(terminal: string, cashier: string, openedAt: string, openedMs: number): Promise<OpenShiftResult> {
    return this.core.tx(async (t) => {
      // Two relays at once: the second INSERT waits for the first and then does nothing.
      const [r] = await t.q(`INSERT INTO shifts (terminal, cashier, opened_at, opened_ms) VALUES ($1, $2, $3, $4)
        ON CONFLICT (terminal) WHERE closed_ms IS NULL DO NOTHING RETURNING *`, [terminal, cashier, openedAt, openedMs]);
      if (r) return { ok: true, shift: shiftRow(r) };
      const [o] = await t.q('SELECT * FROM shifts WHERE terminal = $1 AND closed_ms IS NULL', [terminal]);
      return { ok: false, open: o ? shiftRow(o) : null };
    });
  }

  async close(id: number, closedAt: string, closedMs: number, by: string, reportJson: string): Promise<boolean> {
    const r = await this.core.pool.query('UPDATE shifts SET closed_at = $1, closed_ms = $2, closed_by = $3, report = $4 WHERE id = $5 AND closed_ms IS NULL',
      [closedAt, closedMs, by, reportJson, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async between(fromMs: number, toMs: number): Promise<ShiftRow[]> {
    return (await this.core.q('SELECT * FROM shifts WHERE opened_ms >= $1 AND opened_ms < $2 ORDER BY opened_ms, id', [fromMs, toMs])).map(shiftRow);
  }
}

class PgTimeline implements TimelineRepo {
  constructor(private readonly core: PgCore) {}

  async record(no: string, at: string, terminal: string, type: string, detail: string): Promise<boolean> {
    // Printed events arrive with every sale: a named prepared statement; one statement, so an
    // order cannot vanish between the check and the insert.
    const r = await this.core.pool.query({
      name: 'counter_order_event',
      text: `INSERT INTO order_events (combine_out_trade_no, at, terminal, type, detail)
        SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM orders WHERE combine_out_trade_no = $1)`,
      values: [no, at, terminal, type, detail],
    });
    return (r.rowCount ?? 0) > 0;
  }

  async get(no: string): Promise<TimelineData | null> {
    return snapshot(this.core, async (t): Promise<TimelineData | null> => {
      const [order] = await t.q<TimelineOrderRow>(`SELECT combine_out_trade_no, state, created_at, paid_at, closed_at, terminal, creation, error_code,
        error_message, transaction_ids, paid_via FROM orders WHERE combine_out_trade_no = $1`, [no]);
      if (!order) return null;
      const events = await t.q<TimelineData['events'][number]>('SELECT at, terminal, type, detail FROM order_events WHERE combine_out_trade_no = $1 ORDER BY id', [no]);
      const audit = await t.q<TimelineData['audit'][number]>('SELECT at, terminal, action, detail FROM audit_log WHERE target = $1 ORDER BY id', [no]);
      const refunds = await t.q<TimelineData['refunds'][number]>(`SELECT out_refund_no, out_trade_no, mchid, amount, status, success_time, refund_id FROM refunds
        WHERE combine_out_trade_no = $1 AND status = 'SUCCESS' AND success_time IS NOT NULL ORDER BY created_ms, out_refund_no`, [no]);
      return { order, events, audit, refunds };
    });
  }
}

// A sale counts once per order, and once per merchant it contains (COUNT DISTINCT over the join).
const PAID = "FROM orders o WHERE o.state = 'SUCCESS' AND o.paid_ms >= $1 AND o.paid_ms < $2";
const SHIFT_SALES = "FROM orders o WHERE o.terminal = $1 AND o.created_ms >= $2 AND o.created_ms < $3 AND o.state = 'SUCCESS'";
const bySubs = (where: string) => `SELECT s.mchid AS mchid, COUNT(DISTINCT o.combine_out_trade_no) AS count, SUM(s.amount) AS amount
  ${where.replace('WHERE', 'JOIN sub_orders s ON s.combine_out_trade_no = o.combine_out_trade_no WHERE')} GROUP BY s.mchid ORDER BY s.mchid`;

class PgReports implements ReportsRepo {
  constructor(private readonly core: PgCore) {}

  async shift(terminal: string, fromMs: number, toMs: number): Promise<ShiftFigures> {
    return snapshot(this.core, async (t) => {
      const args = [terminal, fromMs, toMs];
      const [sales] = await t.q(`SELECT COUNT(*) AS count, COALESCE(SUM(o.total_amount), 0) AS amount ${SHIFT_SALES}`, args);
      const subs = await t.q(bySubs(SHIFT_SALES), args);
      const [open] = await t.q(`SELECT COUNT(*) AS count, COALESCE(SUM(total_amount), 0) AS amount FROM orders
        WHERE state IN ('NOTPAY','USERPAYING') AND creation <> 'FAILED' AND terminal = $1`, [terminal]);
      const [unpaid] = await t.q(`SELECT COUNT(*) FILTER (WHERE creation <> 'FAILED' AND state = 'CLOSED') AS closed,
        COUNT(*) FILTER (WHERE creation = 'FAILED' OR state = 'PAYERROR') AS failed
        FROM orders WHERE terminal = $1 AND created_ms >= $2 AND created_ms < $3`, args);
      return { sales: totals(sales), merchants: merchants(subs), open: totals(open), unpaid: { closed: num(unpaid!.closed), failed: num(unpaid!.failed) } };
    });
  }

  private async paidIn(t: Tx, fromMs: number, toMs: number): Promise<PaidFigures> {
    const [sales] = await t.q(`SELECT COUNT(*) AS count, COALESCE(SUM(o.total_amount), 0) AS amount ${PAID}`, [fromMs, toMs]);
    return { sales: totals(sales), merchants: merchants(await t.q(bySubs(PAID), [fromMs, toMs])) };
  }

  async paid(fromMs: number, toMs: number): Promise<PaidFigures> {
    return snapshot(this.core, (t) => this.paidIn(t, fromMs, toMs));
  }

  async day(fromMs: number, toMs: number): Promise<DayFigures> {
    return snapshot(this.core, async (t) => {
      const paid = await this.paidIn(t, fromMs, toMs);
      const terminals = (await t.q(`SELECT o.terminal AS terminal, COUNT(*) AS count, SUM(o.total_amount) AS amount ${PAID} GROUP BY o.terminal ORDER BY o.terminal`, [fromMs, toMs]))
        .map((r) => ({ terminal: r.terminal as string, count: num(r.count), amount: num(r.amount) }));
      const [open] = await t.q(`SELECT COUNT(*) AS count, COALESCE(SUM(total_amount), 0) AS amount FROM orders
        WHERE state IN ('NOTPAY','USERPAYING') AND creation <> 'FAILED' AND created_ms >= $1 AND created_ms < $2`, [fromMs, toMs]);
      return { ...paid, terminals, open: totals(open) };
    });
  }

  async lastBillRun(billDate: string): Promise<{ at: string; report: string } | null> {
    const [r] = await this.core.q<{ at: string; report: string }>('SELECT at, report FROM bill_runs WHERE bill_date = $1 ORDER BY id DESC LIMIT 1', [billDate]);
    return r ?? null;
  }
}

export class PgCounter implements CounterRepo {
  readonly pin: PinRepo;
  readonly shifts: ShiftsRepo;
  readonly timeline: TimelineRepo;
  readonly reports: ReportsRepo;

  constructor(core: PgCore) {
    this.pin = new PgPin(core);
    this.shifts = new PgShifts(core);
    this.timeline = new PgTimeline(core);
    this.reports = new PgReports(core);
  }
}
