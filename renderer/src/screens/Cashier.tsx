/**
 * Cashier screen: ring up goods per sub-merchant, charge (Enter), show the QR until paid.
 * Keyboard-first: digits type the selected merchant's amount, ←/→ switch merchant,
 * Enter charges, Esc clears or goes back. Every control is also a large touch target.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { CreateOrderRequest, Order, SubMerchantInfo } from '../contract';
import { api, getState, mergeOrders, useAppState } from '../store';
import { t } from '../i18n';
import { applyKey, formatFen, MAX_ENTRY_FEN, type KeyRefusal } from '../money';
import { friendly } from '../errors';
import { toFailure } from '../api';
import { buildRequest, cartTotal, ChargeKeys, merchantTotal, type Cart } from './cart';
import { confirmAboveFen, isWaiting, needsConfirmation, sameSaleKey, sameSaleRequest } from '../orders';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { OrderView } from './OrderView';
import { isTyping, useKeys } from '../keys';

const KEYS = ['7', '8', '9', '⌫', '4', '5', '6', 'C', '1', '2', '3', '00', '0', '.'];

export function Cashier({ active }: { active: boolean }) {
  const s = useAppState();
  const merchants = s.merchants;
  // The sale and the selected merchant live in refs updated at once, with state only to re-render:
  // a key pressed right after a tap (before the next render) must see that tap.
  const [cart, setCartState] = useState<Cart>({});
  const cartRef = useRef<Cart>(cart);
  const setCart = (next: Cart | ((c: Cart) => Cart)) => {
    const value = typeof next === 'function' ? next(cartRef.current) : next;
    if (value === cartRef.current) return;
    cartRef.current = value;
    setCartState(value);
  };
  const [selected, setSelectedState] = useState(0);
  const selectedRef = useRef(selected);
  const setSelected = (next: number | ((i: number) => number)) => {
    selectedRef.current = typeof next === 'function' ? next(selectedRef.current) : next;
    setSelectedState(selectedRef.current);
  };
  const [viewing, setViewing] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState<{ text: string; code?: string } | null>(null);
  /** The last keypad key refused, said next to the amount (the field never stops silently). */
  const [refused, setRefused] = useState<KeyRefusal | null>(null);
  /** A large sale waiting for the cashier's confirmation before 收款. */
  const [confirming, setConfirming] = useState<{ total: number; limit: number } | null>(null);
  /** The cart line last changed, scrolled into view after the render. */
  const [touched, setTouched] = useState<string | null>(null);
  const cartBox = useRef<HTMLDivElement>(null);
  const busy = useRef(false);
  const chargeKeys = useRef(new ChargeKeys());
  const seenStates = useRef<Record<string, Order['state']>>({});
  const [paidNotice, setPaidNotice] = useState<Order | null>(null);
  const me = s.session?.terminal ?? null;
  // The customer display follows the order on this screen (none: it shows the store, idle).
  useEffect(() => {
    void Promise.resolve().then(() => api().presentOrder(viewing)).catch(() => undefined);
  }, [viewing]);

  // An order of this till paid, or failed (PAYERROR), while the cashier was elsewhere: say so on
  // the main screen; a tap opens it (a failed one offers a new QR for the same sale).
  useEffect(() => {
    for (const o of Object.values(s.orders)) {
      const prev = seenStates.current[o.combine_out_trade_no];
      if (prev && prev !== o.state && (o.state === 'SUCCESS' || o.state === 'PAYERROR') && o.combine_out_trade_no !== viewing && (me === null || o.terminal === me)) {
        setPaidNotice(o);
      }
      seenStates.current[o.combine_out_trade_no] = o.state;
    }
  }, [s.orders, viewing, me]);

  const current: SubMerchantInfo | undefined = merchants[Math.min(selected, merchants.length - 1)];
  const total = cartTotal(merchants, cart);

  const editEntry = (key: string) => {
    const list = getState().merchants;
    const target = list[Math.min(selectedRef.current, list.length - 1)];
    if (!target) return;
    const mchid = target.mchid;
    setError(null);
    const mc = cartRef.current[mchid] ?? { items: {}, entry: '' };
    let entry: string;
    if (key === '⌫') entry = mc.entry.slice(0, -1);
    else if (key === 'C') entry = '';
    else {
      const r = applyKey(mc.entry, key);
      if (!r.ok) {
        setRefused(r.reason);
        return;
      }
      entry = r.entry;
    }
    setRefused(null);
    setTouched(`${mchid}:entry`);
    setCart((c) => ({ ...c, [mchid]: { ...mc, entry } }));
  };

  const addItem = (m: SubMerchantInfo, sku: string, delta: number) => {
    setError(null);
    setRefused(null);
    setTouched(`${m.mchid}:${sku}`);
    setCart((c) => {
      const mc = c[m.mchid] ?? { items: {}, entry: '' };
      const q = Math.max(0, (mc.items[sku] ?? 0) + delta);
      const items = { ...mc.items, [sku]: q };
      if (q === 0) delete items[sku];
      return { ...c, [m.mchid]: { ...mc, items } };
    });
  };

  /** 收款: a large total first asks for confirmation (`confirmed` = the cashier said yes). */
  const charge = async (confirmed = false) => {
    if (busy.current) return;
    const cart = cartRef.current;
    const merchants = getState().merchants;
    const built = buildRequest(merchants, cart);
    setRefused(null);
    if (!built.ok) {
      setError({ text: built.reason === 'EMPTY' ? t('cashier.needAmount') : t('cashier.tooManyMerchants', { n: built.count }) });
      return;
    }
    const limit = confirmAboveFen(getState().settings);
    if (!confirmed && needsConfirmation(built.total, limit)) {
      setConfirming({ total: built.total, limit });
      return;
    }
    setConfirming(null);
    // One idempotency key per press; a re-press of the same sale after a timeout or lost answer
    // reuses it, so the relay returns the order it may already have created instead of a second one.
    const key = chargeKeys.current.keyFor(built.request, () => crypto.randomUUID());
    await create(built.request, key, () => setCart({}));
  };

  /** Creates the order and shows it; on failure the error text (the sale stays where it was). */
  const create = async (request: CreateOrderRequest, key: string, onCreated?: () => void): Promise<string | null> => {
    busy.current = true;
    setCreating(true);
    setError(null);
    try {
      const order = await api().createOrder(request, key);
      chargeKeys.current.settle(null);
      mergeOrders([order]);
      onCreated?.();
      setPaidNotice(null);
      setViewing(order.combine_out_trade_no);
      return null;
    } catch (err) {
      const f = friendly(err);
      chargeKeys.current.settle(f.code);
      // A relay without basic Native refuses one sub-order: say that plainly, not "number of merchants".
      const text = request.sub_orders.length === 1 && toFailure(err).field === 'sub_orders' ? t('err.singleNotSupported') : f.text;
      setError({ text, code: f.code });
      return text;
    } finally {
      busy.current = false;
      setCreating(false);
    }
  };

  /** A failed sale (create refused, or PAYERROR): the same lines as a new order, a new QR. */
  const newQrFor = async (o: Order): Promise<string | null> => {
    if (busy.current) return null;
    return create(sameSaleRequest(o), sameSaleKey(o));
  };

  useEffect(() => {
    if (!touched || !cartBox.current) return;
    const line = cartBox.current.querySelector(`[data-line="${CSS.escape(touched)}"]`);
    line?.scrollIntoView({ block: 'nearest' });
  }, [cart, touched]);

  useKeys((e) => {
    if (!active || viewing) return;
    if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (confirming) {
      // The dialog owns the keys: Enter charges, Esc goes back to the sale; nothing else types.
      if (e.key === 'Enter') void charge(true);
      else if (e.key === 'Escape') setConfirming(null);
      e.preventDefault();
      return;
    }
    if (/^[0-9.]$/.test(e.key)) editEntry(e.key);
    else if (e.key === 'Backspace') editEntry('⌫');
    else if (e.key === 'Delete') editEntry('C');
    else if (e.key === 'Enter') void charge();
    else if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const n = merchants.length || 1;
      setSelected((i) => (i + (e.key === 'ArrowRight' ? 1 : n - 1)) % n);
    } else if (e.key === 'Escape') {
      // Clears the error and the typed amount together: digits typed next start a new amount.
      setError(null);
      editEntry('C');
    } else return;
    e.preventDefault();
  });

  const viewedOrder: Order | undefined = viewing ? s.orders[viewing] : undefined;
  if (viewing && viewedOrder) {
    return (
      <OrderView
        order={viewedOrder}
        active={active}
        sandbox={!!s.session?.sandbox_url}
        onBack={() => setViewing(null)}
        onNewQr={newQrFor}
      />
    );
  }

  const open = Object.values(s.orders)
    .filter((o) => isWaiting(o) && (me === null || o.terminal === me))
    .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));

  return (
    <div class="cashier" data-testid="cashier">
      <section class="catalog-pane">
        <div class="merchant-tabs" role="tablist">
          {merchants.map((m, i) => {
            const sub = merchantTotal(m, cart[m.mchid]);
            return (
              <button
                key={m.mchid}
                role="tab"
                aria-selected={i === selected}
                class={`merchant-tab ${i === selected ? 'selected' : ''}`}
                data-testid={`merchant-${m.mchid}`}
                onClick={() => setSelected(i)}
              >
                <span class="mt-name">{m.name}</span>
                <span class="mt-amount">{sub > 0 ? formatFen(sub) : ' '}</span>
              </button>
            );
          })}
        </div>
        <div class="catalog-grid">
          {current && (current.catalog ?? []).length === 0 && <div class="hint">{t('cashier.noCatalog')}</div>}
          {current &&
            (current.catalog ?? []).map((item) => {
              const q = cart[current.mchid]?.items[item.sku] ?? 0;
              return (
                <button
                  key={item.sku}
                  class={`item ${q ? 'in-cart' : ''}`}
                  data-testid={`item-${item.sku}`}
                  onClick={() => addItem(current, item.sku, 1)}
                >
                  <span class="item-name">{item.name}</span>
                  <span class="item-price">{formatFen(item.price)}</span>
                  <span class="item-qty">{q ? `×${q}` : ''}</span>
                </button>
              );
            })}
        </div>
        <div class="open-orders">
          <div class="open-title">{t('cashier.openOrders')}</div>
          <div class="open-list" data-testid="open-orders">
            {open.length === 0 && <span class="hint">{t('cashier.noOpenOrders')}</span>}
            {open.map((o) => (
              <button
                key={o.combine_out_trade_no}
                class={`open-chip state-${o.state}`}
                data-testid="open-order"
                data-order={o.combine_out_trade_no}
                data-state={o.state}
                onClick={() => setViewing(o.combine_out_trade_no)}
              >
                <span>{formatFen(o.total_amount)}</span>
                <span class="chip-state">{t(`state.${o.state}`)}</span>
              </button>
            ))}
          </div>
        </div>
      </section>

      <section class="till-pane">
        <div class="cart" data-testid="cart" ref={cartBox}>
          <div class="pane-title">{t('cashier.cart')}</div>
          {total === 0 && <div class="hint">{t('cashier.cartEmpty')}</div>}
          {merchants.map((m) => {
            const mc = cart[m.mchid];
            const sub = merchantTotal(m, mc);
            if (!mc || sub === 0) return null;
            return (
              <div class="cart-group" key={m.mchid}>
                <div class="cart-merchant">
                  <span>{m.name}</span>
                  <span>{formatFen(sub)}</span>
                </div>
                {(m.catalog ?? []).filter((it) => mc.items[it.sku]).map((it) => (
                  <div class="cart-line" key={it.sku} data-line={`${m.mchid}:${it.sku}`}>
                    <span>{it.name} ×{mc.items[it.sku]}</span>
                    <span>{formatFen(it.price * mc.items[it.sku])}</span>
                    <button class="btn tiny" aria-label={t('cashier.remove')} onClick={() => addItem(m, it.sku, -1)}>−</button>
                  </div>
                ))}
                {mc.entry !== '' && (
                  <div class="cart-line" data-line={`${m.mchid}:entry`}>
                    <span>{t('cashier.manualAmount')}</span>
                    <span>{formatFen(merchantTotal(m, { items: {}, entry: mc.entry }))}</span>
                    <span />
                  </div>
                )}
              </div>
            );
          })}
        </div>
        <div class={`entry ${refused ? 'refused' : ''}`} data-testid="entry" data-refused={refused ?? ''}>
          <span class="entry-label">{current ? t('cashier.amountFor', { name: current.name }) : ''}</span>
          <span class="entry-value">{current ? (cart[current.mchid]?.entry || '0') : ''}</span>
        </div>
        <div class="keypad">
          {KEYS.map((k) => (
            <button key={k} class={`key ${k === '0' ? 'wide' : ''}`} data-key={k} onClick={() => editEntry(k)}>
              {k}
            </button>
          ))}
        </div>
        <div class="total-row">
          <span>{t('cashier.total')}</span>
          <span class="total" data-testid="total">{formatFen(total)}</span>
        </div>
        <div class="message-slot">
          {!error && refused && (
            <div class="error-box warn-box" role="status" data-testid="key-refused" data-reason={refused}>
              {t(`cashier.keyRefused.${refused}`, { max: formatFen(MAX_ENTRY_FEN) })}
            </div>
          )}
          {error && (
            <div class="error-box" role="alert" data-testid="cashier-error">
              {error.text}
              {error.code && <small class="code"> ({t('err.code', { code: error.code })})</small>}
            </div>
          )}
          {!error && !refused && s.connection !== 'online' && s.connection !== 'connecting' && (
            <div class="error-box" data-testid="cashier-offline">
              {s.connection === 'unauthorized' ? t('err.unauthorized') : s.connection === 'unconfigured' ? t('cashier.unconfigured') : t('cashier.offline')}
            </div>
          )}
          {!error && !refused && (s.connection === 'online' || s.connection === 'connecting') && paidNotice && (
            <button class={`paid-notice ${paidNotice.state === 'PAYERROR' ? 'failed' : ''}`} data-testid={paidNotice.state === 'PAYERROR' ? 'failed-notice' : 'paid-notice'}
              onClick={() => { setViewing(paidNotice.combine_out_trade_no); setPaidNotice(null); }}>
              {t(paidNotice.state === 'PAYERROR' ? 'cashier.failedAway' : 'cashier.paidAway', { amount: formatFen(paidNotice.total_amount), no: paidNotice.combine_out_trade_no })}
            </button>
          )}
          {!error && !refused && (s.connection === 'online' || s.connection === 'connecting') && !paidNotice && <div class="hint small">{t('cashier.keysHint')}</div>}
        </div>
        <div class="charge-row">
          <button class="btn clear" onClick={() => { setCart({}); setError(null); setRefused(null); }}>{t('cashier.clear')}</button>
          <button class="btn charge" data-testid="charge" disabled={creating} onClick={() => void charge()}>
            {creating ? t('cashier.creating') : `${t('cashier.charge')} ${formatFen(total)}`}
          </button>
        </div>
      </section>
      {confirming && (
        <ConfirmDialog
          testid="confirm-amount"
          title={t('cashier.confirmTitle')}
          body={t('cashier.confirmBody', { amount: formatFen(confirming.total), limit: formatFen(confirming.limit) })}
          yes={t('cashier.confirmYes')}
          no={t('cashier.confirmNo')}
          onYes={() => void charge(true)}
          onNo={() => setConfirming(null)}
        />
      )}
    </div>
  );
}
