/**
 * One order in full: every sub-order (merchant, amount, sub-order number, WeChat Pay transaction
 * id, state, refunds), the relay's timeline (created, QR, printed, paid by notification or query,
 * closed by whom, refunds), and reprints of the slip or paid receipt (marked REPRINT on paper).
 * Refunds: the refund panel (RefundPanel) below the sub-orders, for a manager.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Order, OrderTimeline, PrintJob, TimelineEntry } from '../contract';
import { api, mergeOrders, mergePrintJobs, useAppState } from '../store';
import { t } from '../i18n';
import { tc } from '../counter-i18n';
import { formatFen } from '../money';
import { beijingDateTime } from '../time';
import { friendly } from '../errors';
import { displayStatus, orderKind } from '../orders';
import { PrintStatus } from '../components/PrintStatus';
import { RefundPanel } from '../components/RefundPanel';

function entryText(e: TimelineEntry): string {
  if (e.type === 'printed') return tc(e.detail.kind === 'receipt' ? 'tl.printed.receipt' : 'tl.printed.slip') + (e.detail.reprint ? tc('tl.reprint') : '');
  if (e.type === 'paid') {
    const via = e.detail.via === 'notification' || e.detail.via === 'query' ? e.detail.via : 'unknown';
    return tc(`tl.paid.${via}`);
  }
  if (e.type === 'refund') {
    const amount = typeof e.detail.amount === 'number' ? ` ${formatFen(e.detail.amount)}` : '';
    const what = e.detail.status ?? e.detail.outcome ?? '';
    return `${tc('tl.refund')}${amount}${what ? ` (${String(what)})` : ''}`;
  }
  if (e.type === 'audit') return `${tc('tl.audit')}: ${String(e.detail.action ?? '')}`;
  if (e.type === 'close_refused') return `${tc('tl.close_refused')} (${String(e.detail.outcome ?? '')})`;
  if (e.type === 'create_failed') return `${tc('tl.create_failed')}${e.detail.code ? ` (${String(e.detail.code)})` : ''}`;
  return tc(`tl.${e.type}` as 'tl.created');
}

function byText(by: string | null): string {
  if (!by) return '';
  if (by === 'auto') return tc('tl.by', { by: tc('tl.auto') });
  if (by === 'wechatpay') return '';
  return tc('tl.by', { by });
}

export function OrderDetail({ no, onBack }: { no: string; onBack(): void }) {
  const s = useAppState();
  const order: Order | undefined = s.orders[no];
  const [timeline, setTimeline] = useState<OrderTimeline | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const load = async () => {
    setError(null);
    try {
      const [o, tl] = await Promise.all([api().getOrder(no), api().orderTimeline(no)]);
      mergeOrders([o]);
      setTimeline(tl);
    } catch (err) {
      setError(friendly(err).text);
    }
  };
  useEffect(() => {
    void load();
  }, [no, order?.version]);
  const reprint = async (kind: 'slip' | 'receipt') => {
    setBusy(true);
    setError(null);
    try {
      const job: PrintJob = await api().print(kind, no, true);
      mergePrintJobs([job]);
      // The relay records the paper once it is out; show it in the timeline.
      setTimeout(() => void load(), 600);
    } catch (err) {
      setError(friendly(err).text);
    } finally {
      setBusy(false);
    }
  };
  const names = new Map(s.merchants.map((m) => [m.mchid, m.name]));
  const status = order ? displayStatus(order) : null;
  return (
    <div class="panel order-detail" data-testid="order-detail" data-order={no}>
      <div class="toolbar">
        <button class="btn" data-testid="detail-back" onClick={onBack}>{tc('detail.back')}</button>
        <div class="detail-title">{tc('detail.title')} <span class="mono">{no}</span></div>
        {status && <span class={`status-badge state-${status}`} data-testid="detail-status" data-status={status}>{t(`state.${status}`)}</span>}
      </div>
      <div class="message-slot">{error && <div class="error-box" role="alert">{error}</div>}</div>
      {order && (
        <div class="detail-body">
          <div class="detail-facts">
            <div><span class="figure-label">{t('manager.amount')}</span> <b data-testid="detail-total">{formatFen(order.total_amount)}</b></div>
            <div><span class="figure-label">{t('manager.terminal')}</span> {order.terminal}</div>
            <div><span class="figure-label">{t('manager.time')}</span> {beijingDateTime(order.created_at)}</div>
            {order.paid_at && <div><span class="figure-label">{tc('tl.paid.unknown')}</span> {beijingDateTime(order.paid_at)}</div>}
            <div><span class="figure-label">{tc('history.kind')}</span> {orderKind(order) === 'single' ? tc('history.kindSingle') : tc('history.kindCombine')}</div>
          </div>
          <h3>{tc('detail.subOrders')}</h3>
          <table class="table" data-testid="detail-subs">
            <thead>
              <tr><th>{tc('detail.merchant')}</th><th>{tc('detail.subNo')}</th><th>{tc('detail.txid')}</th><th>{tc('detail.state')}</th><th class="num">{tc('detail.amount')}</th><th class="num">{tc('detail.refunds')}</th></tr>
            </thead>
            <tbody>
              {order.sub_orders.map((x) => (
                <tr key={x.out_trade_no} data-testid="detail-sub" data-mchid={x.mchid} data-txid={x.transaction_id ?? ''}>
                  <td>{names.get(x.mchid) ?? x.mchid}<div class="small">{x.description !== names.get(x.mchid) ? x.description : ''}</div></td>
                  <td class="mono small">{x.out_trade_no}</td>
                  <td class="mono small">{x.transaction_id ?? '—'}</td>
                  <td>{t(`state.${x.state}`)}</td>
                  <td class="num">{formatFen(x.amount)}</td>
                  <td class="num" data-testid="detail-sub-refunded" data-amount={x.refunded_amount ?? 0}>{x.refunded_amount ? formatFen(x.refunded_amount) : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {/* Refunds: a paid order, for a manager (manager terminal, manager token or a PIN unlock; the relay decides). */}
          {order.state === 'SUCCESS' && (s.session?.manager || s.session?.role === 'manager') && (
            <div class="refund-slot" data-testid="refund-slot"><RefundPanel key={order.combine_out_trade_no} order={order} /></div>
          )}
          <div class="toolbar">
            <button class="btn" data-testid="reprint-slip" disabled={busy || !order.code_url} onClick={() => void reprint('slip')}>{tc('detail.reprintSlip')}</button>
            <button class="btn" data-testid="reprint-receipt" disabled={busy || order.state !== 'SUCCESS'} onClick={() => void reprint('receipt')}>{tc('detail.reprintReceipt')}</button>
          </div>
          <PrintStatus orderNo={no} kinds={order.state === 'SUCCESS' ? ['slip', 'receipt'] : ['slip']} />
          <h3>{tc('detail.timeline')}</h3>
          <ol class="timeline" data-testid="timeline">
            {(timeline?.entries ?? []).map((e, i) => (
              <li key={i} data-testid="timeline-entry" data-type={e.type} data-via={String(e.detail.via ?? '')} data-reprint={String(e.detail.reprint ?? '')}>
                <span class="tl-time">{beijingDateTime(e.at)}</span>
                <span class="tl-text">{entryText(e)}</span>
                <span class="tl-by">{byText(e.by)}</span>
              </li>
            ))}
          </ol>
        </div>
      )}
    </div>
  );
}
