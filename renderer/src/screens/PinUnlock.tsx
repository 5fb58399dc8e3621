/**
 * The manager's PIN at a cashier terminal: unlocks the manager screen for a few minutes. The
 * elevation stays inside the terminal services; this screen only learns until when it lasts.
 * `PinBanner` shows the time left and locks again at once.
 */
import { useState } from 'preact/hooks';
import { api, update, useAppState } from '../store';
import { tc } from '../counter-i18n';
import { formatCountdown, useNow } from '../time';
import { friendly } from '../errors';
import { toFailure } from '../api';

async function refreshSession(): Promise<void> {
  const session = await api().session();
  update({ session });
}

export function PinUnlock() {
  const [pin, setPin] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!/^\d{4,8}$/.test(pin)) {
      setError(tc('pin.format'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api().unlockManager(pin);
      setPin('');
      await refreshSession();
    } catch (err) {
      const f = toFailure(err);
      setPin('');
      if (f.code === 'WRONG_PIN') setError(tc('pin.wrong', { n: Number(/(\d+) tries left/.exec(f.message)?.[1] ?? 0) }));
      else if (f.code === 'PIN_LOCKED') setError(tc('pin.locked', { min: Math.ceil((f.retry_after_seconds ?? 900) / 60) }));
      else if (f.code === 'PIN_NOT_SET') setError(tc('pin.notSet'));
      else setError(friendly(err).text);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="panel pin-unlock" data-testid="pin-unlock">
      <h2>{tc('pin.title')}</h2>
      <div class="hint">{tc('pin.hint')}</div>
      <form class="toolbar" onSubmit={(e) => void submit(e)}>
        <label>{tc('pin.input')}
          <input type="password" inputMode="numeric" autocomplete="off" maxLength={8} value={pin} data-testid="pin-input"
            onInput={(e) => setPin((e.target as HTMLInputElement).value.replace(/\D/g, ''))} />
        </label>
        <button class="btn primary" type="submit" data-testid="pin-unlock-go" disabled={busy}>{tc('pin.unlock')}</button>
      </form>
      <div class="message-slot">{error && <div class="error-box" role="alert" data-testid="pin-error">{error}</div>}</div>
    </div>
  );
}

/** Shown on the manager screen while a PIN unlock lasts. */
export function PinBanner() {
  const s = useAppState();
  const now = useNow(1000);
  const until = s.session?.manager_until ? Date.parse(s.session.manager_until) : null;
  if (!until) return null;
  const left = Math.ceil((until - now) / 1000);
  if (left <= 0) {
    // Expired at the relay too: ask for the session again (the manager screen locks).
    void refreshSession();
    return null;
  }
  return (
    <div class="notice pin-banner" data-testid="pin-banner">
      {tc('pin.unlocked', { time: formatCountdown(left) })}
      <button class="btn small" data-testid="pin-lock" onClick={() => void api().lockManager().then(refreshSession)}>{tc('pin.lock')}</button>
    </div>
  );
}
