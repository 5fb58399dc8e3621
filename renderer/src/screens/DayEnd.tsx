/**
 * The manager's day-end (日结): every terminal's sales of a Beijing day per merchant, refunds, net,
 * orders still open, each merchant's bill reconciliation status (the day's last bill run), the
 * terminals and shifts of the day; exportable as CSV made by the relay.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { DayEndReport } from '../contract';
import { api } from '../store';
import { tc } from '../counter-i18n';
import { formatFen } from '../money';
import { beijingDate, beijingDateTime } from '../time';
import { friendly } from '../errors';
import { latestOnly } from '../latest';
import { DateField } from '../components/DateField';
import { ReportFigures } from '../components/ReportFigures';
import { saveTextFile } from '../download';

export function DayEnd() {
  const [date, setDate] = useState(beijingDate());
  const [data, setData] = useState<DayEndReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const latest = useRef(latestOnly()).current;
  const load = async () => {
    setError(null);
    try {
      await latest(api().dayEnd(date), setData);
    } catch (err) {
      setError(friendly(err).text);
    }
  };
  useEffect(() => {
    void load();
  }, [date]);
  const csv = async () => {
    setError(null);
    try {
      const f = await api().exportCsv({ kind: 'day-end', date });
      saveTextFile(f.filename, f.content);
    } catch (err) {
      setError(friendly(err).text);
    }
  };
  return (
    <div class="panel dayend" data-testid="dayend">
      <div class="toolbar">
        <label>{tc('history.date')}<DateField value={date} max={beijingDate()} testid="dayend-date" onChange={setDate} /></label>
        <button class="btn" data-testid="dayend-load" onClick={() => void load()}>{tc('dayend.load')}</button>
        <button class="btn" data-testid="dayend-csv" onClick={() => void csv()}>{tc('shift.csv')}</button>
        {data && <span class="hint small" data-testid="dayend-bill-run">{data.bill_run_at ? tc('report.billRun', { time: beijingDateTime(data.bill_run_at) }) : tc('report.billNever')}</span>}
      </div>
      <div class="message-slot">{error && <div class="error-box" role="alert">{error}</div>}</div>
      {data && (
        <div class="table-wrap">
          <ReportFigures testid="dayend-report" sales={data.sales} refunds={data.refunds} net={data.net} merchants={data.merchants} openOrders={data.open_orders} withBill />
          <div class="report-columns">
            <div>
              <h3>{tc('report.terminals')}</h3>
              <table class="table" data-testid="dayend-terminals">
                <tbody>
                  {data.terminals.map((x) => (
                    <tr key={x.terminal} data-testid="dayend-terminal" data-terminal={x.terminal} data-count={x.count} data-amount={x.amount}>
                      <td>{x.terminal}</td><td class="num">{tc('report.count', { n: x.count })}</td><td class="num">{formatFen(x.amount)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <div>
              <h3>{tc('report.shifts')}</h3>
              <table class="table" data-testid="dayend-shifts">
                <tbody>
                  {data.shifts.map((x) => (
                    <tr key={x.id} data-testid="dayend-shift" data-id={x.id}>
                      <td>#{x.id}</td><td>{x.terminal}</td><td>{x.cashier}</td>
                      <td>{beijingDateTime(x.opened_at)} – {x.closed_at ? beijingDateTime(x.closed_at) : '…'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        </div>
      )}
    </div>
  );
}
