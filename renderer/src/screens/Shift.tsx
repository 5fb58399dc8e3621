/**
 * Shift handover (交班): open a shift (the cashier's name comes from Settings, editable), watch the
 * shift's figures as the relay computes them, close it (confirmation) — the relay fixes the report
 * and the terminal prints it — reprint it, export it as CSV.
 */
import { useEffect, useState } from 'preact/hooks';
import type { PrintJob, Shift as ShiftInfo, ShiftReport } from '../contract';
import { api, useAppState } from '../store';
import { t } from '../i18n';
import { tc } from '../counter-i18n';
import { beijingDateTime } from '../time';
import { friendly, printerFailureText } from '../errors';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ReportFigures } from '../components/ReportFigures';
import { saveTextFile } from '../download';

export function Shift() {
  const s = useAppState();
  const [shift, setShift] = useState<ShiftInfo | null | undefined>(undefined);
  const [report, setReport] = useState<ShiftReport | null>(null);
  const [closed, setClosed] = useState<ShiftReport | null>(null);
  const [job, setJob] = useState<PrintJob | null>(null);
  const [cashier, setCashier] = useState(s.settings?.cashier_name ?? '');
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const guard = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(friendly(err).text);
    } finally {
      setBusy(false);
    }
  };
  const load = () => guard(async () => {
    const cur = await api().currentShift();
    setShift(cur);
    setReport(cur ? await api().shiftReport(cur.id) : null);
  });
  useEffect(() => {
    void load();
  }, []);
  // The print job of the report follows the pushed print events.
  useEffect(() => {
    if (job && s.printJobs[job.id]) setJob(s.printJobs[job.id]!);
  }, [s.printJobs]);

  const open = () => guard(async () => {
    const sh = await api().openShift(cashier.trim());
    setClosed(null);
    setJob(null);
    setShift(sh);
    setReport(await api().shiftReport(sh.id));
  });
  const close = () => guard(async () => {
    const r = await api().closeShift();
    setClosed(r.report);
    setJob(r.job);
    setShift(null);
    setReport(null);
  });
  const reprint = (id: number) => guard(async () => setJob(await api().printShiftReport(id)));
  const csv = (id: number) => guard(async () => {
    const f = await api().exportCsv({ kind: 'shift', id });
    saveTextFile(f.filename, f.content);
  });

  const shown = closed ?? report;
  return (
    <div class="panel shift" data-testid="shift">
      <div class="message-slot">{error && <div class="error-box" role="alert">{error}</div>}</div>
      {shift === null && !closed && (
        <div class="shift-open" data-testid="shift-none">
          <div class="hint">{tc('shift.none')}</div>
          <form class="toolbar" onSubmit={(e) => { e.preventDefault(); void open(); }}>
            <label>{tc('shift.cashier')}<input value={cashier} maxLength={20} data-testid="shift-cashier" onInput={(e) => setCashier((e.target as HTMLInputElement).value)} /></label>
            <button class="btn primary" type="submit" data-testid="shift-open" disabled={busy}>{tc('shift.open')}</button>
          </form>
        </div>
      )}
      {shift && (
        <div class="toolbar">
          <div class="shift-title" data-testid="shift-current" data-id={shift.id}>
            <b>{tc('shift.current', { id: shift.id })}</b> {shift.cashier} · {tc('shift.since', { time: beijingDateTime(shift.opened_at) })}
          </div>
          <button class="btn" data-testid="shift-refresh" disabled={busy} onClick={() => void load()}>{tc('shift.refresh')}</button>
          <button class="btn" data-testid="shift-csv" disabled={busy} onClick={() => void csv(shift.id)}>{tc('shift.csv')}</button>
          <button class="btn danger-solid" data-testid="shift-close" disabled={busy} onClick={() => setConfirm(true)}>{tc('shift.close')}</button>
        </div>
      )}
      {closed && (
        <div class="toolbar">
          <div class="shift-title" data-testid="shift-closed" data-id={closed.shift.id}>
            <b>{tc('shift.closed', { id: closed.shift.id })}</b> {closed.shift.cashier} · {beijingDateTime(closed.from)} – {beijingDateTime(closed.to)}
          </div>
          {job && (
            <span class={`print-job state-${job.state}`} data-testid="shift-print" data-state={job.state}>
              {tc('shift.printed', { state: tc(`print.state.${job.state}`) })}{job.reprint ? t('print.reprintMark') : ''}
              {job.state === 'failed' && ` — ${printerFailureText(job.failure)}`}
            </span>
          )}
          <button class="btn" data-testid="shift-reprint" disabled={busy} onClick={() => void reprint(closed.shift.id)}>{tc('shift.reprint')}</button>
          <button class="btn" data-testid="shift-csv" disabled={busy} onClick={() => void csv(closed.shift.id)}>{tc('shift.csv')}</button>
          <button class="btn primary" data-testid="shift-new" disabled={busy} onClick={() => { setClosed(null); setJob(null); void load(); }}>{tc('shift.newShift')}</button>
        </div>
      )}
      {shown && (
        <>
          <div class="hint small">{tc('report.span')}: {beijingDateTime(shown.from)} – {beijingDateTime(shown.to)} · {tc('report.unpaid', { closed: shown.unpaid.closed, failed: shown.unpaid.failed })}</div>
          <ReportFigures testid="shift-report" sales={shown.sales} refunds={shown.refunds} net={shown.net} merchants={shown.merchants} openOrders={shown.open_orders} />
        </>
      )}
      {confirm && (
        <ConfirmDialog
          testid="confirm-shift-close"
          title={tc('shift.close')}
          body={tc('shift.confirmClose')}
          yes={tc('shift.close')}
          no={t('common.cancel')}
          danger
          onYes={() => { setConfirm(false); void close(); }}
          onNo={() => setConfirm(false)}
        />
      )}
    </div>
  );
}
