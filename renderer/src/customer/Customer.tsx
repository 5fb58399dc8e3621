/**
 * The customer display: idle (store name and logo), waiting (amount and the QR to scan), paid
 * (支付成功，谢谢惠顾) or failed. Its own small dictionary: this bundle holds none of the cashier's screens.
 */
import { useEffect, useState } from 'preact/hooks';
import type { CustomerView, Language } from '../../../shared/contracts/terminal-api';
import { Qr } from '../components/Qr';
import { formatFen } from '../money';
import { subscribe, type FeedStatus } from './feed';

const TEXT = {
  'zh-CN': {
    welcome: '欢迎光临', pay: '应付金额', scan: '请使用微信扫一扫付款', paid: '支付成功，谢谢惠顾',
    closed: '本单已取消', failed: '支付未成功，请联系收银员', expired: '二维码已过期，请联系收银员',
    reconnecting: '正在连接…', expired_session: '顾客显示已失效，请从收银程序重新打开。', validUntil: '{time} 前有效',
  },
  en: {
    welcome: 'Welcome', pay: 'Amount due', scan: 'Scan with WeChat to pay', paid: 'Payment received. Thank you!',
    closed: 'This sale was cancelled', failed: 'Payment did not go through: please ask the cashier', expired: 'The QR code has expired: please ask the cashier',
    reconnecting: 'Connecting…', expired_session: 'This display has expired: open it again from the cashier app.', validUntil: 'valid until {time}',
  },
} as const;

/** HH:mm in Beijing time whatever the display's time zone. */
function beijingTime(iso: string): string {
  const d = new Date(Date.parse(iso) + 8 * 3600_000);
  return Number.isNaN(d.getTime()) ? '' : `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

export function Customer() {
  const [view, setView] = useState<CustomerView | null>(null);
  const [status, setStatus] = useState<FeedStatus>('reconnecting');
  useEffect(() => subscribe((v) => { setView(v); setStatus('live'); }, setStatus), []);
  const lang: Language = view?.language === 'en' ? 'en' : 'zh-CN';
  useEffect(() => { document.documentElement.lang = lang; }, [lang]);
  const T = TEXT[lang];

  if (status === 'expired') return <div class="c-screen c-note" data-testid="customer-expired">{T.expired_session}</div>;
  if (!view) return <div class="c-screen c-note" data-testid="customer-connecting">{T.reconnecting}</div>;

  const store = (
    <div class="c-store">
      {view.store_logo && <img class="c-logo" src={view.store_logo} alt="" data-testid="customer-logo" />}
      {view.store_name && <div class="c-store-name" data-testid="customer-store">{view.store_name}</div>}
    </div>
  );
  const amount = view.amount !== undefined ? <div class="c-amount" data-testid="customer-amount">{formatFen(view.amount)}</div> : null;

  return (
    <div class={`c-screen c-${view.phase}`} data-testid="customer" data-phase={view.phase}>
      {status === 'reconnecting' && <div class="c-banner">{T.reconnecting}</div>}
      {view.phase === 'idle' && (
        <div class="c-idle">
          {store}
          <div class="c-welcome">{T.welcome}</div>
        </div>
      )}
      {view.phase === 'waiting' && view.code_url && (
        <div class="c-waiting">
          <div class="c-side">
            {view.store_name && <div class="c-store-small">{view.store_name}</div>}
            <div class="c-label">{T.pay}</div>
            {amount}
            <div class="c-scan">{T.scan}</div>
            {view.expires_at && <div class="c-valid">{T.validUntil.replace('{time}', beijingTime(view.expires_at))}</div>}
          </div>
          <Qr value={view.code_url} size={420} />
        </div>
      )}
      {view.phase === 'paid' && (
        <div class="c-end">
          <div class="c-check" aria-hidden="true">✓</div>
          {amount}
          <div class="c-thanks" data-testid="customer-thanks">{T.paid}</div>
        </div>
      )}
      {view.phase === 'failed' && (
        <div class="c-end">
          {amount}
          <div class="c-failed" data-testid="customer-failed">{view.reason === 'closed' ? T.closed : view.reason === 'expired' ? T.expired : T.failed}</div>
        </div>
      )}
    </div>
  );
}
