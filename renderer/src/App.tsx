/** Shell of the screens: header (tabs, connection, language) and the boot sequence. */
import { useEffect, useState } from 'preact/hooks';
import type { RendererApi } from './api';
import { api, getState, handleEvent, mergeOrders, mergePrintJobs, setApi, update, useAppState } from './store';
import { language, setLanguage, t } from './i18n';
import { Cashier } from './screens/Cashier';
import { Manager } from './screens/Manager';
import { Settings } from './screens/Settings';
import { History } from './screens/History';
import { Shift } from './screens/Shift';
import { tc } from './counter-i18n';

type Screen = 'cashier' | 'history' | 'shift' | 'manager' | 'settings';

/** Loads everything the screens need; each part failing alone leaves the rest usable. */
export async function refresh(): Promise<void> {
  const a = api();
  const [session, settings, merchants, open, jobs] = await Promise.allSettled([
    a.session(), a.getSettings(), a.listMerchants(), a.openOrders(), a.printJobs(),
  ]);
  if (settings.status === 'fulfilled') {
    setLanguage(settings.value.language);
    update({ settings: settings.value });
  }
  if (session.status === 'fulfilled') update({ session: session.value, connection: session.value.connection });
  if (merchants.status === 'fulfilled') update({ merchants: merchants.value });
  if (open.status === 'fulfilled') mergeOrders(open.value);
  if (jobs.status === 'fulfilled') mergePrintJobs(jobs.value);
}

export function App({ pos }: { pos: RendererApi }) {
  const s = useAppState();
  const [screen, setScreen] = useState<Screen>('cashier');
  const [booted, setBooted] = useState(false);

  useEffect(() => {
    setApi(pos);
    let last = getState().connection;
    const off = pos.onEvent((e) => {
      handleEvent(e);
      // Back online (or newly authorised): what we hold may be stale or empty.
      if (e.type === 'connection' && e.state === 'online' && last !== 'online') void refresh();
      if (e.type === 'connection') last = e.state;
    });
    // A reopened event stream may have missed changes: reload what the screens show.
    let opened = 0;
    const offOpen = pos.onStreamOpen?.(() => {
      if (opened++ > 0) void refresh();
    });
    void refresh().finally(() => {
      setBooted(true);
      const c = getState().session?.connection;
      if (c === 'unconfigured' || c === 'unauthorized') setScreen('settings');
    });
    return () => {
      off();
      offOpen?.();
    };
  }, [pos]);

  const toggleLanguage = async () => {
    const next = language() === 'zh-CN' ? 'en' : 'zh-CN';
    setLanguage(next);
    const settings = getState().settings;
    if (settings) {
      update({ settings: { ...settings, language: next } });
      try {
        // Only the language: every other setting keeps its stored value.
        const r = await api().saveSettings({ language: next });
        if (r.ok) update({ settings: r.settings });
      } catch {
        // the switch still applies to this session
      }
    } else update({});
  };

  const conn = s.connection;
  return (
    <div class="app" data-lang={language()}>
      <header class="topbar">
        <div class="brand">{t('app.title')}</div>
        <nav class="tabs">
          {(['cashier', 'history', 'shift', 'manager', 'settings'] as const).map((x) => (
            <button key={x} class={`tab ${screen === x ? 'selected' : ''}`} data-testid={`tab-${x}`} onClick={() => setScreen(x)}>
              {x === 'history' || x === 'shift' ? tc(`nav.${x}`) : t(`nav.${x}`)}
            </button>
          ))}
        </nav>
        <div class={`conn conn-${conn}`} data-testid="connection" data-state={conn}>
          <span class="dot" />
          {t(`conn.${conn}`)}
        </div>
        <div class="terminal-name">{s.session?.terminal ?? ''}</div>
        <button class="btn lang" data-testid="lang" onClick={() => void toggleLanguage()}>{t('lang.switch')}</button>
      </header>
      <main class="main">
        {!booted && <div class="hint">{t('common.loading')}</div>}
        <div class="screen" style={{ display: screen === 'cashier' && booted ? 'flex' : 'none' }}>
          <Cashier active={screen === 'cashier'} />
        </div>
        {booted && screen === 'history' && <div class="screen"><History /></div>}
        {booted && screen === 'shift' && <div class="screen"><Shift /></div>}
        {booted && screen === 'manager' && <div class="screen"><Manager /></div>}
        {booted && screen === 'settings' && (
          <div class="screen">
            <Settings onSaved={() => void refresh()} />
          </div>
        )}
      </main>
    </div>
  );
}
