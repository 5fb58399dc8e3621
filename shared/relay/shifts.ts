/**
 * Shifts (交班): a terminal has at most one open shift (a partial unique index says so, on every
 * relay sharing the store: two opens at once get one shift and one SHIFT_OPEN); closing it stores
 * the report as it was at that moment, so a reprint later shows the same figures.
 */
import type { Shift, ShiftReport } from '../contracts/counter-api';
import { BadRequest, RelayError } from './errors';
import type { TerminalIdentity } from './auth';
import type { ShiftRow, ShiftsRepo } from './repo-counter';
import type { AuditRepo } from './repo-types';
import type { Reports } from './reports';
import { textProblem } from './validate';

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
  constructor(private readonly repo: ShiftsRepo, private readonly audit: AuditRepo, private readonly reports: Reports) {}

  async current(terminal: string): Promise<Shift | null> {
    const r = await this.repo.current(terminal);
    return r ? toShift(r) : null;
  }

  async open(terminal: string, cashier: string, now = Date.now()): Promise<Shift> {
    const r = await this.repo.open(terminal, cashier, new Date(now).toISOString(), now);
    if (!r.ok) {
      // Open already (or opened a moment ago by a request on another relay).
      if (r.open) throw new RelayError(409, 'SHIFT_OPEN', `shift ${r.open.id} is still open on this terminal: close it first`, { shift: toShift(r.open) });
      throw new RelayError(409, 'SHIFT_OPEN', 'a shift is already open on this terminal');
    }
    await this.audit.add(terminal, 'shift.open', `shift:${r.shift.id}`, { cashier });
    return toShift(r.shift);
  }

  private async row(id: number, who: TerminalIdentity): Promise<ShiftRow> {
    const r = await this.repo.get(id);
    if (!r) throw new RelayError(404, 'SHIFT_NOT_FOUND', `no shift ${id}`);
    if (r.terminal !== who.name && who.role !== 'manager') throw new RelayError(403, 'FORBIDDEN', 'another terminal\'s shift needs a manager');
    return r;
  }

  /** The shift, if `who` may see it: its own terminal, or a manager. */
  async get(id: number, who: TerminalIdentity): Promise<Shift> {
    return toShift(await this.row(id, who));
  }

  async close(id: number, who: TerminalIdentity, now = Date.now()): Promise<ShiftReport> {
    const shift = await this.get(id, who);
    if (shift.closed_at) throw new RelayError(409, 'SHIFT_CLOSED', `shift ${id} was closed at ${shift.closed_at}`);
    const closedAt = new Date(now).toISOString();
    const report = await this.reports.shift({ ...shift, closed_at: closedAt, closed_by: who.name }, now);
    if (!(await this.repo.close(id, closedAt, now, who.name, JSON.stringify(report)))) throw new RelayError(409, 'SHIFT_CLOSED', `shift ${id} was closed meanwhile`);
    await this.audit.add(who.name, 'shift.close', `shift:${id}`, { sales: report.sales, net: report.net });
    return report;
  }

  /** The stored report of a closed shift, or the live one of an open shift. */
  async report(id: number, who: TerminalIdentity): Promise<ShiftReport> {
    const r = await this.row(id, who);
    if (r.report) return JSON.parse(r.report) as ShiftReport;
    return this.reports.shift(toShift(r));
  }

  /** Shifts opened in [fromMs, toMs), oldest first. */
  async between(fromMs: number, toMs: number): Promise<Shift[]> {
    return (await this.repo.between(fromMs, toMs)).map(toShift);
  }
}
