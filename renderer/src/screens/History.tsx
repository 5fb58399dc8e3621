/**
 * Order history for everyone at the counter: find an order by the beginning (or all) of its order
 * number, a sub-order number or a WeChat Pay transaction id (4200…), by day, terminal, state and
 * kind; open it to see the detail (OrderDetail). The relay searches (indexed prefix match).
 */
import { useRef, useState } from 'preact/hooks';
import type { Order, OrderState } from '../contract';
import { ORDER_STATES } from '../contract';
import { api, mergeOrders, useAppState } from '../store';
import { t } from '../i18n';
import { tc } from '../counter-i18n';
import { formatFen } from '../money';
import { beijingDate, beijingDateTime } from '../time';
import { friendly } from '../errors';
import { latestOnly } from '../latest';
import { displayStatus, orderKind } from '../orders';
import { DateField } from '../components/DateField';
import { OrderDetail } from './OrderDetail';

export function History() {
  const s = useAppState();
  const [q, setQ] = useState('');
  const [date, setDate] = useState(beijingDate());
  const [anyDay, setAnyDay] = useState(false);
  const [mine, setMine] = useState(false);
  const [state, setState] = useState<OrderState | ''>('');
  const [kind, setKind] = useState<'' | 'single' | 'combine'>('');
  const [result, setResult] = useState<Order[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const latest = useRef(latestOnly()).current;

  const search = async (e?: Event) => {
    e?.preventDefault();
    setError(null);
    try {
      // A number search looks across days unless a day is asked for explicitly.
      const number = q.trim();
      await latest(api().listOrders({
        ...(number ? { q: number } : {}),
        ...(!anyDay && !number ? { date } : {}),
        ...(state ? { state } : {}),
        ...(mine && s.session?.terminal ? { terminal: s.session.terminal } : {}),
        limit: 200,
      }), (orders) => {
        mergeOrders(orders);
        setResult(kind ? orders.filter((o) => orderKind(o) === kind) : orders);
      });
    } catch (err) {
      setError(friendly(err).text);
    }
  };

  if (open) return <OrderDetail no={open} onBack={() => setOpen(null)} />;
  return (
    <div class="panel history" data-testid="history">
      <form class="toolbar wrap" onSubmit={(e) => void search(e)}>
        <label class="grow">{tc('history.q')}
          <input value={q} data-testid="history-q" inputMode="text" autocomplete="off" onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
        </label>
        <label>{tc('history.date')}<DateField value={date} max={beijingDate()} testid="history-date" onChange={(d) => { setDate(d); setAnyDay(false); }} /></label>
        <label>{tc('history.terminal')}
          <select value={mine ? 'mine' : 'all'} data-testid="history-terminal" onChange={(e) => setMine((e.target as HTMLSelectElement).value === 'mine')}>
            <option value="all">{tc('history.allTerminals')}</option>
            <option value="mine">{tc('history.thisTerminal')}</option>
          </select>
        </label>
        <label>{tc('history.state')}
          <select value={state} data-testid="history-state" onChange={(e) => setState((e.target as HTMLSelectElement).value as OrderState | '')}>
            <option value="">{t('state.any')}</option>
            {ORDER_STATES.map((st) => <option key={st} value={st}>{t(`state.${st}`)}</option>)}
          </select>
        </label>
        <label>{tc('history.kind')}
          <select value={kind} data-testid="history-kind" onChange={(e) => setKind((e.target as HTMLSelectElement).value as '' | 'single' | 'combine')}>
            <option value="">{tc('history.kindAny')}</option>
            <option value="combine">{tc('history.kindCombine')}</option>
            <option value="single">{tc('history.kindSingle')}</option>
          </select>
        </label>
        <button class="btn primary" type="submit" data-testid="history-go">{tc('history.search')}</button>
      </form>
      <div class="message-slot">{error && <div class="error-box" role="alert">{error}</div>}</div>
      <div class="table-wrap">
        {result && result.length === 0 && <div class="hint" data-testid="history-none">{tc('history.none')}</div>}
        {result && result.length > 0 && (
          <table class="table">
            <thead>
              <tr><th>{t('manager.orderNo')}</th><th>{t('manager.time')}</th><th>{t('manager.terminal')}</th><th>{t('manager.searchState')}</th><th class="num">{t('manager.amount')}</th><th /></tr>
            </thead>
            <tbody>
              {result.map((o) => {
                const st = displayStatus(o);
                return (
                  <tr key={o.combine_out_trade_no} class="clickable" data-testid="history-row" data-order={o.combine_out_trade_no} onClick={() => setOpen(o.combine_out_trade_no)}>
                    <td class="mono">{o.combine_out_trade_no}</td>
                    <td>{beijingDateTime(o.created_at)}</td>
                    <td>{o.terminal}</td>
                    <td><span class={`status-badge small state-${st}`}>{t(`state.${st}`)}</span></td>
                    <td class="num">{formatFen(o.total_amount)}</td>
                    <td><button class="btn small" data-testid="history-open">{tc('history.open')}</button></td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}
