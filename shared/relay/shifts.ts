/**
 * Shifts (交班): a terminal has at most one open shift (a partial unique index says so); closing
 * it stores the report as it was at that moment, so a reprint later shows the same figures.
 */
import type { Shift, ShiftReport } from '../contracts/counter-api';
import type { Db } from './db';
import { BadRequest, RelayError } from './errors';
import type { TerminalIdentity } from './auth';
import type { Reports } from './reports';
import type { OrderStore } from './store';
import { textProblem } from './validate';

interface ShiftRow {
  id: number;
  terminal: string;
  cashier: string;
  opened_at: string;
  opened_ms: number;
  closed_at: string | null;
  closed_ms: number | null;
  closed_by: string | null;
  report: string | null;
}

const toShift = (r: ShiftRow): Shift => ({ id: r.id, terminal: r.terminal, cashier: r.cashier, opened_at: r.opened_at, closed_at: r.closed_at, closed_by: r.closed_by });

export function validCashier(body: unknown): string {
  const c = (body as { cashier?: unknown } | null)?.cashier;
  if (c === undefined || c === null) return '';
  if (typeof c !== 'string' || [...c].length > 20) throw new BadRequest('cashier', 'must be a name of at most 20 characters');
  const problem = textProblem(c);
  if (problem) throw new BadRequest('cashier', problem);
  return c.trim();
}

export class Shifts {
  constructor(private readonly db: Db, private readonly store: OrderStore, private readonly reports: Reports) {}

  private row(id: number): ShiftRow | undefined {
    return this.db.prepare('SELECT * FROM shifts WHERE id = ?').get(id) as ShiftRow | undefined;
  }

  current(terminal: string): Shift | null {
    const r = this.db.prepare('SELECT * FROM shifts WHERE terminal = ? AND closed_ms IS NULL').get(terminal) as ShiftRow | undefined;
    return r ? toShift(r) : null;
  }

  open(terminal: string, cashier: string, now = Date.now()): Shift {
    const existing = this.current(terminal);
    if (existing) throw new RelayError(409, 'SHIFT_OPEN', `shift ${existing.id} is still open on this terminal: close it first`, { shift: existing });
    let id: number;
    try {
      id = Number(this.db.prepare('INSERT INTO shifts (terminal, cashier, opened_at, opened_ms) VALUES (?, ?, ?, ?)')
        .run(terminal, cashier, new Date(now).toISOString(), now).lastInsertRowid);
    } catch (err) {
      // Two opens at once: the unique index lets one through.
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new RelayError(409, 'SHIFT_OPEN', 'a shift is already open on this terminal');
      throw err;
    }
    this.store.audit(terminal, 'shift.open', `shift:${id}`, { cashier });
    return toShift(this.row(id)!);
  }

  /** The shift, if `who` may see it: its own terminal, or a manager. */
  get(id: number, who: TerminalIdentity): Shift {
    const r = this.row(id);
    if (!r) throw new RelayError(404, 'SHIFT_NOT_FOUND', `no shift ${id}`);
    if (r.terminal !== who.name && who.role !== 'manager') throw new RelayError(403, 'FORBIDDEN', 'another terminal\'s shift needs a manager');
    return toShift(r);
  }

  close(id: number, who: TerminalIdentity, now = Date.now()): ShiftReport {
    const shift = this.get(id, who);
    if (shift.closed_at) throw new RelayError(409, 'SHIFT_CLOSED', `shift ${id} was closed at ${shift.closed_at}`);
    const closedAt = new Date(now).toISOString();
    const report = this.reports.shift({ ...shift, closed_at: closedAt, closed_by: who.name }, now);
    const changed = this.db.prepare('UPDATE shifts SET closed_at = ?, closed_ms = ?, closed_by = ?, report = ? WHERE id = ? AND closed_ms IS NULL')
      .run(closedAt, now, who.name, JSON.stringify(report), id).changes;
    if (changed === 0) throw new RelayError(409, 'SHIFT_CLOSED', `shift ${id} was closed meanwhile`);
    this.store.audit(who.name, 'shift.close', `shift:${id}`, { sales: report.sales, net: report.net });
    return report;
  }

  /** The stored report of a closed shift, or the live one of an open shift. */
  report(id: number, who: TerminalIdentity): ShiftReport {
    const shift = this.get(id, who);
    const r = this.row(id)!;
    if (r.report) return JSON.parse(r.report) as ShiftReport;
    return this.reports.shift(shift);
  }

  /** Shifts opened in [fromMs, toMs), oldest first. */
  between(fromMs: number, toMs: number): Shift[] {
    return (this.db.prepare('SELECT * FROM shifts WHERE opened_ms >= ? AND opened_ms < ? ORDER BY opened_ms').all(fromMs, toMs) as ShiftRow[]).map(toShift);
  }
}
