/**
 * One order at the till: the QR large with the total and the expiry countdown while unpaid,
 * a success screen once paid. Status comes from pushed events; fixed regions so nothing jumps.
 */
import { useState } from 'preact/hooks';
import type { Order } from '../contract';
import { api, useAppState } from '../store';
import { t } from '../i18n';
import { formatFen } from '../money';
import { formatCountdown, useNow } from '../time';
import { friendly } from '../errors';
import { Qr } from '../components/Qr';
import { PrintStatus } from '../components/PrintStatus';
import { isTyping, useKeys } from '../keys';
import { displayStatus, isFailed, subLabel } from '../orders';

interface Props {
  order: Order;
  active: boolean;
  sandbox: boolean;
  onBack(): void;
  /** New order for the same sale (after a failure); resolves to an error text, or null when shown. */
  onNewQr?(order: Order): Promise<string | null>;
}

export function OrderView({ order, active, sandbox, onBack, onNewQr }: Props) {
  const now = useNow(1000);
  const [note, setNote] = useState<string | null>(null);
  const [again, setAgain] = useState(false);
  const failed = isFailed(order);
  const newQr = async () => {
    if (!onNewQr || again) return;
    setAgain(true);
    setNote(null);
    const problem = await onNewQr(order);
    setAgain(false);
    if (problem) setNote(problem);
  };
  const paid = order.state === 'SUCCESS';
  const final = paid || order.state === 'CLOSED' || order.state === 'PAYERROR';

  useKeys((e) => {
    if (!active || isTyping(e)) return;
    if (e.key === 'Enter' && failed && onNewQr) {
      e.preventDefault();
      void newQr();
    } else if (e.key === 'Escape' || (e.key === 'Enter' && final)) {
      e.preventDefault();
      onBack();
    }
  });

  const simulate = async () => {
    setNote(null);
    try {
      const url = await api().customerPhoneUrl();
      if (url) window.open(url, '_blank', 'noopener');
    } catch (err) {
      setNote(friendly(err).text);
    }
  };

  const secondsLeft = Math.floor((Date.parse(order.expires_at) - now) / 1000);
  const expired = secondsLeft <= 0;

  if (paid) {
    return (
      <div class="order-view success" data-testid="order-view" data-order={order.combine_out_trade_no}>
        <div class="success-panel" data-testid="paid" data-state={order.state}>
          <div class="success-mark" aria-hidden="true">✓</div>
          <div class="success-title">{t('order.paidTitle')}</div>
          <div class="success-amount">{formatFen(order.total_amount)}</div>
          <div class="order-no">{t('order.number', { no: order.combine_out_trade_no })}</div>
        </div>
        <aside class="order-side">
          <Subs order={order} />
          <PrintStatus orderNo={order.combine_out_trade_no} kinds={['slip', 'receipt']} />
          <button class="btn charge" data-testid="new-sale" onClick={onBack}>{t('order.newSale')}</button>
        </aside>
      </div>
    );
  }

  const failedCreate = displayStatus(order) === 'CREATE_FAILED';
  const status = displayStatus(order);
  return (
    <div class="order-view" data-testid="order-view" data-order={order.combine_out_trade_no}>
      <div class="qr-panel">
        <div class={`qr-box ${final || expired || failedCreate ? 'dim' : ''}`}>
          {order.code_url && !failedCreate ? <Qr value={order.code_url} size={440} /> : <div class="qr-placeholder">{failedCreate ? t('order.creationFailed') : t('cashier.creating')}</div>}
          {failed && <div class="qr-failed" data-testid="order-failed">{failedCreate ? t('order.creationFailed') : t('order.failedTitle')}</div>}
        </div>
        <div class="scan-hint">{final || failedCreate ? '' : t('order.scanToPay')}</div>
      </div>
      <aside class="order-side">
        <div class="due">
          <span>{t('order.total')}</span>
          <span class="due-amount" data-testid="order-total">{formatFen(order.total_amount)}</span>
        </div>
        <div class={`status-badge state-${status}`} data-testid="order-status" data-state={order.state} data-status={status}>
          {t(`state.${status}`)}
        </div>
        <div class="countdown" data-testid="countdown">
          {final || failedCreate ? '' : expired ? t('order.expired') : t('order.expiresIn', { time: formatCountdown(secondsLeft) })}
        </div>
        <div class="order-hint" data-testid="order-hint">
          {order.state === 'PAYERROR' ? t(onNewQr ? 'order.payFailedHint' : 'order.failedHint')
            : order.state === 'CLOSED' ? t('order.closedHint')
            : failedCreate ? (
              <>
                {t('order.createFailedHint')}
                {(order.error_message || order.error_code) && (
                  <div class="upstream-error" data-testid="order-error">
                    {t('order.upstreamError', { message: order.error_message || order.error_code || '' })}
                    {order.error_code && order.error_message && <small class="code"> ({t('err.code', { code: order.error_code })})</small>}
                  </div>
                )}
              </>
            )
            : t('order.leaveHint')}
        </div>
        <div class="order-no">{t('order.number', { no: order.combine_out_trade_no })}</div>
        <Subs order={order} />
        <PrintStatus orderNo={order.combine_out_trade_no} kinds={['slip']} />
        <div class="message-slot">{note && <div class="error-box">{note}</div>}</div>
        {failed && onNewQr && (
          <button class="btn charge" data-testid="new-qr" disabled={again} onClick={() => void newQr()}>
            {again ? t('order.creatingAgain') : t('order.newQr')}
          </button>
        )}
        <div class="charge-row">
          <button class="btn" data-testid="back" onClick={onBack}>{t('order.back')}</button>
          {sandbox && !final && !failedCreate && (
            <button class="btn" data-testid="simulate" onClick={() => void simulate()}>{t('order.simulate')}</button>
          )}
        </div>
      </aside>
    </div>
  );
}

function Subs({ order }: { order: Order }) {
  const names = Object.fromEntries(useAppState().merchants.map((m) => [m.mchid, m.name]));
  return (
    <ul class="subs">
      {order.sub_orders.map((so) => (
        <li key={so.out_trade_no}>
          <span class="sub-desc">{subLabel(names[so.mchid], so.description)}</span>
          <span>{formatFen(so.amount)}</span>
        </li>
      ))}
    </ul>
  );
}
