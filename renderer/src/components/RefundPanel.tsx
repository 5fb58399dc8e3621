/**
 * Refund of one sub-order of a paid order, for a manager (manager terminal, manager token, or a
 * cashier unlocked with the manager PIN; the relay checks the role). Choose the sub-order, the
 * amount (what is left by default, fen-exact entry) and a reason; a confirmation names the
 * merchant, the amount and what stays refundable; then the refund's status follows the pushed
 * `order.updated` until final, and its refund slip (退款凭证) prints once when it succeeds.
 * Hosted by the manager's search results and by the order detail (export `RefundPanel`).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Order, Refund, SubOrder } from '../contract';
import { api, useAppState } from '../store';
import { t } from '../i18n';
import { entryToFen, formatFen } from '../money';
import { friendly } from '../errors';
import { toFailure } from '../api';
import { beijingDateTime } from '../time';
import { subLabel } from '../orders';
import { ConfirmDialog } from './ConfirmDialog';

/** Fen → the entry text "12.50" (what the amount field starts with). */
export function fenToEntry(fen: number): string {
  const digits = String(Math.max(0, fen)).padStart(3, '0');
  return `${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

/** What the sub-order has left to refund: the relay's figure, else paid minus refunds not closed. */
export function refundableOf(order: Order, sub: SubOrder): number {
  if (order.state !== 'SUCCESS') return 0;
  if (sub.refundable_amount !== undefined) return sub.refundable_amount;
  const taken = (order.refunds ?? []).filter((r) => r.out_trade_no === sub.out_trade_no && r.status !== 'CLOSED').reduce((a, r) => a + r.amount, 0);
  return sub.amount - taken;
}

/** A refund refusal in words (the merchant named where it matters). */
export function refundErrorText(err: unknown, merchant: string): string {
  const f = toFailure(err);
  switch (f.code.toUpperCase()) {
    case 'REFUND_EXCEEDS_PAID': {
      const left = (f as unknown as { remaining_amount?: number }).remaining_amount;
      return t('refund.err.exceeds', { left: left === undefined ? '' : ` ${formatFen(left)}` });
    }
    case 'ORDER_NOT_PAID': return t('refund.err.notPaid');
    case 'REFUND_TOO_SOON': return t('refund.err.tooSoon', { s: f.retry_after_seconds ?? 60 });
    case 'MERCHANT_KEYS_MISSING': return t('refund.err.keysMissing', { mchid: merchant });
    case 'WECHATPAY_BUSY': return t('refund.err.busy');
    case 'FORBIDDEN': case 'NOT_MANAGER': return t('refund.err.forbidden');
    default: return friendly(err).text;
  }
}

/** One sub-order per line (the panel brings its own layout: it is hosted by several screens). */
const SUB_ROW = { display: 'flex', alignItems: 'center', gap: '16px', padding: '6px 0', cursor: 'pointer' };

export function RefundPanel({ order: given }: { order: Order }) {
  const s = useAppState();
  // Live: the pushed order.updated replaces the order given by the host.
  const order = s.orders[given.combine_out_trade_no] && (s.orders[given.combine_out_trade_no]!.version ?? 0) >= (given.version ?? 0)
    ? s.orders[given.combine_out_trade_no]! : given;
  const names = Object.fromEntries(s.merchants.map((m) => [m.mchid, m.name]));
  const firstOpen = order.sub_orders.find((x) => refundableOf(order, x) > 0) ?? order.sub_orders[0]!;
  const [subNo, setSubNo] = useState(firstOpen.out_trade_no);
  const sub = order.sub_orders.find((x) => x.out_trade_no === subNo) ?? firstOpen;
  const left = refundableOf(order, sub);
  const [entry, setEntry] = useState(fenToEntry(left));
  const [reason, setReason] = useState('');
  const [confirm, setConfirm] = useState(false);
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  /** Refunds asked for here: their slip prints once when they succeed. */
  const mine = useRef(new Set<string>());
  const printed = useRef(new Set<string>());
  const merchant = names[sub.mchid] ?? sub.mchid;

  // A new sub-order chosen (or its refundable amount changed by a refund): full remaining by default.
  useEffect(() => setEntry(fenToEntry(left)), [subNo, left]);

  useEffect(() => {
    for (const r of order.refunds ?? []) {
      if (r.status === 'SUCCESS' && mine.current.has(r.out_refund_no) && !printed.current.has(r.out_refund_no)) {
        printed.current.add(r.out_refund_no);
        api().printRefund(order.combine_out_trade_no, r.out_refund_no).catch((err) => setError(friendly(err).text));
      }
    }
  }, [order]);

  if (order.state !== 'SUCCESS') {
    return <div class="panel refund-panel" data-testid="refund-panel"><div class="hint" data-testid="refund-not-paid">{t('refund.notPaid')}</div></div>;
  }

  const fen = entryToFen(entry.trim());
  const check = (): string | null => {
    if (fen === null || fen <= 0) return t('refund.badAmount');
    if (fen > left) return t('refund.overLeft', { amount: formatFen(left) });
    if ([...reason].length > 80) return t('refund.reasonTooLong');
    return null;
  };
  const ask = () => {
    setNote(null);
    const problem = check();
    setError(problem);
    if (!problem) setConfirm(true);
  };
  const send = async () => {
    setConfirm(false);
    setSending(true);
    setError(null);
    try {
      // One key per confirmed refund: a retry after a lost answer is the same refund.
      const r: Refund = await api().refundOrder(order.combine_out_trade_no, { out_trade_no: sub.out_trade_no, amount: fen!, ...(reason.trim() ? { reason: reason.trim() } : {}) }, crypto.randomUUID());
      mine.current.add(r.out_refund_no);
      if (r.error_code) setNote(t('refund.err.lost'));
      setReason('');
    } catch (err) {
      setError(refundErrorText(err, merchant));
    } finally {
      setSending(false);
    }
  };

  return (
    <div class="panel refund-panel" data-testid="refund-panel" data-order={order.combine_out_trade_no}>
      <div class="refund-title">{t('refund.title')} · <span class="mono">{order.combine_out_trade_no}</span></div>
      <fieldset class="refund-subs" style={{ border: '1px solid #d0d7de', borderRadius: '8px', padding: '4px 12px', margin: '8px 0' }}>
        <legend>{t('refund.sub')}</legend>
        {order.sub_orders.map((x) => {
          const xl = refundableOf(order, x);
          return (
            <label key={x.out_trade_no} class="refund-sub" style={SUB_ROW} data-testid="refund-sub" data-out-trade-no={x.out_trade_no} data-left={xl}>
              <input type="radio" name="refund-sub" checked={x.out_trade_no === sub.out_trade_no} disabled={xl <= 0} onChange={() => setSubNo(x.out_trade_no)} />
              <span class="sub-desc" style={{ flex: '1 1 auto', fontWeight: 600 }}>{subLabel(names[x.mchid], x.description)}</span>
              <span>{t('refund.paid', { amount: formatFen(x.amount) })}</span>
              {(x.refunded_amount ?? 0) > 0 && <span>{t('refund.refunded', { amount: formatFen(x.refunded_amount!) })}</span>}
              <span class="refund-left">{t('refund.left', { amount: formatFen(xl) })}</span>
            </label>
          );
        })}
      </fieldset>
      {left <= 0 ? <div class="hint">{t('refund.nothingLeft')}</div> : (
        <div class="toolbar">
          <label>{t('refund.amount')}
            <input data-testid="refund-amount" inputMode="decimal" value={entry} onInput={(e) => setEntry((e.target as HTMLInputElement).value)} />
          </label>
          <label>{t('refund.reason')}
            <input data-testid="refund-reason" maxLength={80} value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
          </label>
          <button class="btn danger-solid" data-testid="refund-submit" disabled={sending} onClick={ask}>{sending ? t('refund.sending') : t('refund.submit')}</button>
        </div>
      )}
      <div class="message-slot">
        {error && <div class="error-box" data-testid="refund-error">{error}</div>}
        {note && <div class="hint" data-testid="refund-note">{note}</div>}
      </div>
      <div class="refund-list">
        <div class="refund-title">{t('refund.list')}</div>
        {(order.refunds ?? []).length === 0 ? <div class="hint">{t('refund.none')}</div> : (
          <table class="table">
            <tbody>
              {(order.refunds ?? []).map((r) => (
                <tr key={r.out_refund_no} data-testid="refund-row" data-refund={r.out_refund_no} data-out-trade-no={r.out_trade_no} data-status={r.status}>
                  <td>{names[r.mchid] ?? r.mchid}</td>
                  <td class="num">{formatFen(r.amount)}</td>
                  <td><span class={`status-badge small refund-${r.status}`} data-testid="refund-status">{t(`refund.status.${r.status}`)}</span>
                    {r.status === 'ABNORMAL' && <div class="row-error">{t('refund.abnormalHint')}</div>}</td>
                  <td>{beijingDateTime(r.success_time ?? r.created_at)}</td>
                  <td>{r.reason ?? ''}</td>
                  <td><button class="btn small" data-testid="refund-print" onClick={() => {
                    printed.current.add(r.out_refund_no);
                    api().printRefund(order.combine_out_trade_no, r.out_refund_no, true).catch((err) => setError(friendly(err).text));
                  }}>{t('refund.printSlip')}</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {confirm && (
        <ConfirmDialog testid="refund-confirm" danger title={t('refund.confirmTitle')}
          body={t('refund.confirmText', { merchant, amount: formatFen(fen ?? 0), left: formatFen(left - (fen ?? 0)) })}
          yes={t('refund.confirm')} no={t('refund.cancel')} onYes={() => void send()} onNo={() => setConfirm(false)} />
      )}
    </div>
  );
}
