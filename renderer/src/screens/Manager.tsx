/**
 * Manager screen: stale unpaid orders with Close (and the CLOSE_TOO_EARLY countdown), order
 * search, bill reconciliation with live progress and the mismatch list, alerts, and the day's
 * takings per sub-merchant as bars.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Order, OrderState, ReconciliationReport } from '../contract';
import { ORDER_STATES } from '../contract';
import type { DailyTakings } from '../contract';
import { api, mergeOrders, update, useAppState } from '../store';
import { t, type MessageKey } from '../i18n';
import { formatFen, percent } from '../money';
import { friendly } from '../errors';
import { beijingDate, beijingDateTime, formatCountdown, useNow } from '../time';
import { latestOnly } from '../latest';
import { closeWaitSeconds, displayStatus, isWaiting, orderKind } from '../orders';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { RefundPanel } from '../components/RefundPanel';
import { DateField } from '../components/DateField';
import { billSummary } from '../bills';
import { useKeys } from '../keys';
import { tc } from '../counter-i18n';
import { DayEnd } from './DayEnd';
import { PinBanner, PinUnlock } from './PinUnlock';
import { ManagerPinSetup } from '../components/ManagerPinSetup';

type Tab = 'stale' | 'search' | 'bills' | 'alerts' | 'takings' | 'dayend' | 'pin';
const TABS: Tab[] = ['stale', 'search', 'bills', 'alerts', 'takings', 'dayend', 'pin'];

export function Manager() {
  const s = useAppState();
  const [tab, setTab] = useState<Tab>('stale');
  if (!(s.session?.manager || s.session?.role === 'manager')) {
    // A cashier terminal: the manager unlocks it here with the PIN (no token on the screen).
    return (
      <div class="manager">
        <div class="notice" data-testid="manager-locked">{t('manager.noAccess')}</div>
        {s.session?.role === 'cashier' && <PinUnlock />}
      </div>
    );
  }
  // The PIN is set by the manager's own credentials, not through a PIN unlock.
  const tabs = s.session?.manager_until ? TABS.filter((x) => x !== 'pin') : TABS;
  return (
    <div class="manager" data-testid="manager">
      <PinBanner />
      <nav class="subtabs">
        {tabs.map((x) => (
          <button key={x} class={`subtab ${tab === x ? 'selected' : ''}`} data-testid={`mtab-${x}`} onClick={() => setTab(x)}>
            {x === 'dayend' ? tc('dayend.tab') : x === 'pin' ? tc('pin.tab') : t(`manager.${x}`)}
            {x === 'alerts' && s.alerts.length > 0 && <span class="badge">{s.alerts.length}</span>}
          </button>
        ))}
      </nav>
      <div class="manager-body">
        {tab === 'stale' && <Stale />}
        {tab === 'search' && <Search />}
        {tab === 'bills' && <Bills />}
        {tab === 'alerts' && <Alerts />}
        {tab === 'takings' && <Takings />}
        {tab === 'dayend' && <DayEnd />}
        {tab === 'pin' && <ManagerPinSetup />}
      </div>
    </div>
  );
}

function ErrorLine({ error }: { error: string | null }) {
  return <div class="message-slot">{error && <div class="error-box" role="alert">{error}</div>}</div>;
}

function Stale() {
  const s = useAppState();
  const now = useNow(1000);
  const [minutes, setMinutes] = useState(s.settings?.stale_minutes ?? 10);
  const [list, setList] = useState<string[]>([]);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  /** order → epoch ms when a close may be retried (CLOSE_TOO_EARLY) */
  const [waitUntil, setWaitUntil] = useState<Record<string, number>>({});
  const [closing, setClosing] = useState<Record<string, boolean>>({});
  /** The order whose close waits for the manager's confirmation. */
  const [confirm, setConfirm] = useState<Order | null>(null);

  const load = async () => {
    setLoading(true);
    setError(null);
    try {
      const orders = await api().listOrders({ state: 'NOTPAY', older_than_minutes: minutes });
      mergeOrders(orders);
      setList(orders.map((o) => o.combine_out_trade_no));
    } catch (err) {
      setError(friendly(err).text);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load();
  }, []);

  useKeys((e) => {
    if (!confirm) return;
    if (e.key === 'Enter' || e.key === 'Escape') {
      e.preventDefault();
      const no = confirm.combine_out_trade_no;
      setConfirm(null);
      if (e.key === 'Enter') void close(no);
    }
  });

  const close = async (no: string) => {
    setClosing((c) => ({ ...c, [no]: true }));
    setError(null);
    try {
      mergeOrders([await api().closeOrder(no)]);
    } catch (err) {
      const f = friendly(err);
      if (f.code === 'CLOSE_TOO_EARLY' && f.retryAfter !== undefined) {
        setWaitUntil((w) => ({ ...w, [no]: Date.now() + f.retryAfter! * 1000 }));
      } else setError(f.text);
    } finally {
      setClosing((c) => ({ ...c, [no]: false }));
    }
  };

  // A sale whose create WeChat Pay refused has no QR: nobody is waiting to pay it, it is not "unpaid".
  const orders = list.map((no) => s.orders[no]).filter((o): o is Order => !!o && (isWaiting(o) || o.creation !== 'FAILED'));
  return (
    <div class="panel" data-testid="stale">
      <div class="toolbar">
        <label>
          {t('manager.olderThan')}
          <input type="number" min={0} max={1440} value={minutes} class="num-input" data-testid="stale-minutes"
            onInput={(e) => setMinutes(Math.max(0, Math.trunc(Number((e.target as HTMLInputElement).value) || 0)))} />
          {t('manager.minutes')}
        </label>
        <button class="btn" data-testid="stale-refresh" onClick={() => void load()} disabled={loading}>{t('manager.refresh')}</button>
      </div>
      <ErrorLine error={error} />
      <div class="table-wrap">
        {orders.length === 0 && !loading && <div class="hint">{t('manager.noStale')}</div>}
        <table class="table">
          {orders.length > 0 && (
            <thead>
              <tr><th>{t('manager.orderNo')}</th><th>{t('manager.time')}</th><th /><th>{t('manager.terminal')}</th><th class="num">{t('manager.amount')}</th><th /></tr>
            </thead>
          )}
          <tbody>
            {orders.map((o) => {
              // The relay's CLOSE_TOO_EARLY answer is authoritative (disabled); before any answer, the
              // 5-minute rule is only estimated locally: the button looks disabled and counts down,
              // but a press still asks the relay (its clock and rule decide).
              const told = waitUntil[o.combine_out_trade_no];
              const wait = closeWaitSeconds(o, now, told);
              const done = o.state !== 'NOTPAY' && o.state !== 'USERPAYING';
              const ageMin = Math.floor((now - Date.parse(o.created_at)) / 60000);
              return (
                <tr key={o.combine_out_trade_no} data-testid="stale-row" data-order={o.combine_out_trade_no} data-state={o.state}>
                  <td class="mono">{o.combine_out_trade_no}<KindTag order={o} /></td>
                  <td>{beijingDateTime(o.created_at)}</td>
                  <td>{t('manager.age', { m: ageMin })}</td>
                  <td>{o.terminal}</td>
                  <td class="num">{formatFen(o.total_amount)}</td>
                  <td class="action">
                    {done ? (
                      <span class={`status-badge small state-${o.state}`}>{t(`state.${o.state}`)}</span>
                    ) : (
                      <button class={`btn danger ${wait > 0 ? 'looks-disabled' : ''}`} data-testid="close-order" data-wait={wait}
                        disabled={closing[o.combine_out_trade_no] || (told !== undefined && wait > 0)}
                        onClick={() => setConfirm(o)}>
                        {closing[o.combine_out_trade_no] ? t('manager.closing') : wait > 0 ? t('manager.closeIn', { time: formatCountdown(wait) }) : t('manager.close')}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {confirm && (
        <ConfirmDialog
          testid="confirm-close"
          title={t('manager.confirmCloseYes')}
          body={t('manager.confirmClose', { no: confirm.combine_out_trade_no, amount: formatFen(confirm.total_amount) })}
          yes={t('manager.confirmCloseYes')}
          no={t('common.cancel')}
          danger
          onYes={() => { const no = confirm.combine_out_trade_no; setConfirm(null); void close(no); }}
          onNo={() => setConfirm(null)}
        />
      )}
    </div>
  );
}

/** Contract §2 `kind`: only one-merchant sales are tagged (the usual combined sale needs no label). */
function KindTag({ order }: { order: Order }) {
  if (orderKind(order) !== 'single') return null;
  return <span class="kind-tag" data-testid="kind-tag" title={t('kind.singleTitle')}>{t('kind.single')}</span>;
}

/** State badge: a create refused by WeChat Pay reads "创建失败" with the reason, never "waiting". */
function StatusCell({ order }: { order: Order }) {
  const status = displayStatus(order);
  return (
    <>
      <span class={`status-badge small state-${status}`} data-testid="row-status" data-status={status}>{t(`state.${status}`)}</span>
      {status === 'CREATE_FAILED' && (order.error_message || order.error_code) && (
        <div class="row-error" data-testid="row-error">{order.error_message || order.error_code}</div>
      )}
    </>
  );
}

function OrdersTable({ orders, onRefund }: { orders: Order[]; onRefund?(o: Order): void }) {
  return (
    <table class="table">
      <thead>
        <tr><th>{t('manager.orderNo')}</th><th>{t('manager.time')}</th><th>{t('manager.terminal')}</th><th>{t('manager.searchState')}</th><th class="num">{t('manager.amount')}</th></tr>
      </thead>
      <tbody>
        {orders.map((o) => (
          <tr key={o.combine_out_trade_no} data-testid="search-row" data-order={o.combine_out_trade_no} data-kind={orderKind(o)} data-status={displayStatus(o)}>
            <td class="mono">{o.combine_out_trade_no}<KindTag order={o} /></td>
            <td>{beijingDateTime(o.created_at)}</td>
            <td>{o.terminal}</td>
            <td><StatusCell order={o} /></td>
            <td class="num">{formatFen(o.total_amount)}</td>
            {onRefund && <td>{o.state === 'SUCCESS' && <button class="btn small" data-testid="refund-open" onClick={() => onRefund(o)}>{t('refund.open')}</button>}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Search() {
  const [q, setQ] = useState('');
  const [date, setDate] = useState(beijingDate());
  const [state, setState] = useState<OrderState | ''>('');
  const [result, setResult] = useState<Order[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [refundOf, setRefundOf] = useState<Order | null>(null);
  const latest = useRef(latestOnly()).current;
  const search = async (e?: Event) => {
    e?.preventDefault();
    setError(null);
    try {
      await latest(api().listOrders({
        ...(q.trim() ? { q: q.trim() } : {}),
        ...(date ? { date } : {}),
        ...(state ? { state } : {}),
        limit: 100,
      }), setResult);
    } catch (err) {
      setError(friendly(err).text);
    }
  };
  return (
    <div class="panel" data-testid="search">
      <form class="toolbar" onSubmit={(e) => void search(e)}>
        <label>{t('manager.searchNo')}<input value={q} data-testid="search-q" onInput={(e) => setQ((e.target as HTMLInputElement).value)} /></label>
        <label>{t('manager.searchDate')}<DateField value={date} max={beijingDate()} testid="search-date" onChange={setDate} /></label>
        <label>{t('manager.searchState')}
          <select value={state} data-testid="search-state" onChange={(e) => setState((e.target as HTMLSelectElement).value as OrderState | '')}>
            <option value="">{t('state.any')}</option>
            {ORDER_STATES.map((st) => <option key={st} value={st}>{t(`state.${st}`)}</option>)}
          </select>
        </label>
        <button class="btn" type="submit" data-testid="search-go">{t('manager.doSearch')}</button>
      </form>
      <ErrorLine error={error} />
      <div class="table-wrap">
        {result && result.length === 0 && <div class="hint">{t('manager.noResults')}</div>}
        {result && result.length > 0 && <OrdersTable orders={result} onRefund={setRefundOf} />}
      </div>
      {refundOf && <RefundPanel key={refundOf.combine_out_trade_no} order={refundOf} />}
    </div>
  );
}

function Bills() {
  const s = useAppState();
  const [date, setDate] = useState(beijingDate(Date.now() - 86400_000));
  const [running, setRunning] = useState(false);
  const [report, setReport] = useState<ReconciliationReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const progress = s.billProgress[date];
  const names = Object.fromEntries(s.merchants.map((m) => [m.mchid, m.name]));

  const run = async () => {
    // The picker offers no later day (max = today, Beijing); a typed one is refused here, in words.
    if (date > beijingDate()) {
      setError(t('err.billDateFuture'));
      return;
    }
    setRunning(true);
    setError(null);
    setReport(null);
    update((st) => {
      const bp = { ...st.billProgress };
      delete bp[date];
      return { billProgress: bp };
    });
    try {
      setReport(await api().reconcileBills(date));
    } catch (err) {
      setError(friendly(err).text);
    } finally {
      setRunning(false);
    }
  };
  const pct = progress ? percent(progress.done, progress.total) : report ? 100 : 0;
  return (
    <div class="panel" data-testid="bills">
      <div class="toolbar">
        <label>{t('manager.billDate')}<DateField value={date} max={beijingDate()} testid="bill-date" onChange={setDate} /></label>
        <button class="btn primary" data-testid="reconcile" disabled={running || !date} onClick={() => void run()}>{t('manager.reconcile')}</button>
      </div>
      <div class={`progress ${report && !report.ok ? 'bad' : ''}`} data-testid="bill-progress" data-done={progress?.done ?? 0} data-total={progress?.total ?? 0}>
        <div class="progress-bar" style={{ width: `${pct}%` }} />
        <span class="progress-text">
          {running ? `${t('manager.reconciling')} ${progress ? t('manager.progress', { done: progress.done, total: progress.total }) : ''}` : report ? billSummary(report) : ''}
        </span>
      </div>
      <ErrorLine error={error} />
      {report && (
        <div class="table-wrap" data-testid="bill-report" data-ok={String(report.ok)}>
          <table class="table">
            <thead>
              <tr><th>{t('manager.merchant')}</th><th>{t('manager.billStatus')}</th><th class="num">{t('manager.billCount')}</th><th class="num">{t('manager.billAmount')}</th><th class="num">{t('manager.localCount')}</th><th class="num">{t('manager.localAmount')}</th><th class="num">{t('manager.fee')}</th></tr>
            </thead>
            <tbody>
              {report.merchants.map((m) => (
                <tr key={m.mchid}>
                  <td>{m.name || names[m.mchid] || m.mchid}</td>
                  <td>{t(`bill.${m.status}`)}</td>
                  <td class="num">{m.bill_count}</td>
                  <td class="num">{formatFen(m.bill_amount)}</td>
                  <td class="num">{m.local_count}</td>
                  <td class="num">{formatFen(m.local_amount)}</td>
                  <td class="num">{formatFen(m.fee_amount)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {report.mismatches.length > 0 && (
            <table class="table mismatches" data-testid="mismatches">
              <thead>
                <tr><th>{t('manager.kind')}</th><th>{t('manager.merchant')}</th><th>{t('manager.orderNo')}</th><th class="num">{t('manager.localAmt')}</th><th class="num">{t('manager.billAmt')}</th></tr>
              </thead>
              <tbody>
                {report.mismatches.map((m) => (
                  <tr key={`${m.kind}-${m.mchid}-${m.out_trade_no}`} data-testid="mismatch" data-kind={m.kind} data-out-trade-no={m.out_trade_no}>
                    <td class="warn">{t(`mismatch.${m.kind}`)}</td>
                    <td>{names[m.mchid] ?? m.mchid}</td>
                    <td class="mono">{m.out_trade_no}</td>
                    <td class="num">{m.local_amount === null ? '—' : formatFen(m.local_amount)}</td>
                    <td class="num">{m.bill_amount === null ? '—' : formatFen(m.bill_amount)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </div>
  );
}

function Alerts() {
  const s = useAppState();
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api().listAlerts().then(
      (alerts) => update((st) => {
        const known = new Set(alerts.map((a) => a.id));
        return { alerts: [...alerts, ...st.alerts.filter((a) => !known.has(a.id))].sort((a, b) => b.id - a.id) };
      }),
      (err) => setError(friendly(err).text),
    );
  }, []);
  return (
    <div class="panel" data-testid="alerts">
      <ErrorLine error={error} />
      <div class="table-wrap">
        {s.alerts.length === 0 && <div class="hint">{t('manager.noAlerts')}</div>}
        <table class="table">
          <tbody>
            {s.alerts.map((a) => (
              <tr key={a.id} data-testid="alert" data-kind={a.kind}>
                <td>{beijingDateTime(a.created_at)}</td>
                <td class="warn">{a.kind in MISMATCH_KEYS ? t(MISMATCH_KEYS[a.kind]) : a.kind}</td>
                <td class="mono">{a.combine_out_trade_no ?? ''}</td>
                <td>{a.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

const MISMATCH_KEYS: Record<string, MessageKey> = {
  AMOUNT_MISMATCH: 'mismatch.AMOUNT_MISMATCH',
  MCHID_MISMATCH: 'mismatch.MCHID_MISMATCH',
  UNKNOWN_ORDER: 'mismatch.UNKNOWN_ORDER',
  MISSING_IN_BILL: 'mismatch.MISSING_IN_BILL',
  NOT_PAID_LOCALLY: 'mismatch.NOT_PAID_LOCALLY',
};

function Takings() {
  const [date, setDate] = useState(beijingDate());
  const [data, setData] = useState<DailyTakings | null>(null);
  const [error, setError] = useState<string | null>(null);
  const latest = useRef(latestOnly()).current;
  const load = async () => {
    setError(null);
    try {
      await latest(api().takings(date), setData);
    } catch (err) {
      setError(friendly(err).text);
    }
  };
  useEffect(() => {
    void load();
  }, [date]);
  const max = data ? Math.max(0, ...data.merchants.map((m) => m.amount)) : 0;
  const sum = data ? data.merchants.reduce((x, m) => x + m.amount, 0) : 0;
  // Sales counted once each (the relay's `count`), not once per merchant of a sale.
  const count = data ? (data.count ?? data.merchants.reduce((x, m) => x + m.count, 0)) : 0;
  return (
    <div class="panel" data-testid="takings">
      <div class="toolbar">
        <label>{t('manager.searchDate')}<DateField value={date} max={beijingDate()} testid="takings-date" onChange={setDate} /></label>
        <button class="btn" onClick={() => void load()}>{t('manager.refresh')}</button>
        {data && <span class="takings-total">{t('manager.takingsTotal', { amount: formatFen(sum), count })}</span>}
        {data && (data.refund_amount ?? 0) > 0 && (
          <span class="takings-refunds" data-testid="takings-refunds" data-amount={data.refund_amount} data-gross={data.gross_amount}>
            {t('refund.takings', { gross: formatFen(data.gross_amount ?? 0), refunded: formatFen(data.refund_amount!), n: data.refund_count ?? 0 })}
          </span>
        )}
      </div>
      <ErrorLine error={error} />
      <div class="chart" data-testid="takings-chart">
        {data && sum === 0 && <div class="hint">{t('manager.noTakings')}</div>}
        {data && data.merchants.map((m) => (
          <div class="bar-row" key={m.mchid} data-testid="takings-bar" data-mchid={m.mchid} data-amount={m.amount}>
            <span class="bar-label">{m.name}</span>
            <span class="bar-track"><span class="bar" style={{ width: `${percent(m.amount, max)}%` }} /></span>
            <span class="bar-value">{formatFen(m.amount)} <small>{t('manager.count', { n: m.count })}</small></span>
          </div>
        ))}
      </div>
    </div>
  );
}
