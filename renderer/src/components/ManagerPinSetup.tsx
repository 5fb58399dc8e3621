/** The manager sets or replaces the PIN that unlocks manager functions at cashier terminals. */
import { useEffect, useState } from 'preact/hooks';
import type { ManagerPinStatus } from '../contract';
import { api } from '../store';
import { tc } from '../counter-i18n';
import { beijingDateTime } from '../time';
import { friendly } from '../errors';

export function ManagerPinSetup() {
  const [status, setStatus] = useState<ManagerPinStatus | null>(null);
  const [a, setA] = useState('');
  const [b, setB] = useState('');
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  useEffect(() => {
    api().managerPinStatus().then(setStatus, (err: unknown) => setNote({ ok: false, text: friendly(err).text }));
  }, []);
  const save = async (e: Event) => {
    e.preventDefault();
    if (!/^\d{4,8}$/.test(a)) return setNote({ ok: false, text: tc('pin.format') });
    if (a !== b) return setNote({ ok: false, text: tc('pin.mismatch') });
    try {
      setStatus(await api().setManagerPin(a));
      setA('');
      setB('');
      setNote({ ok: true, text: tc('pin.saved') });
    } catch (err) {
      setNote({ ok: false, text: friendly(err).text });
    }
  };
  const digits = (v: string) => v.replace(/\D/g, '').slice(0, 8);
  return (
    <div class="panel pin-setup" data-testid="pin-setup">
      <h2>{tc('pin.setTitle')}</h2>
      <div class="hint">{tc('pin.setHint')}</div>
      <div data-testid="pin-status" data-set={String(!!status?.set)}>
        {status ? (status.set ? tc('pin.isSet', { time: status.set_at ? beijingDateTime(status.set_at) : '' }) : tc('pin.notSetYet')) : ''}
      </div>
      <form class="toolbar" onSubmit={(e) => void save(e)}>
        <label>{tc('pin.new')}<input type="password" inputMode="numeric" autocomplete="new-password" value={a} data-testid="pin-new" onInput={(e) => setA(digits((e.target as HTMLInputElement).value))} /></label>
        <label>{tc('pin.repeat')}<input type="password" inputMode="numeric" autocomplete="new-password" value={b} data-testid="pin-repeat" onInput={(e) => setB(digits((e.target as HTMLInputElement).value))} /></label>
        <button class="btn primary" type="submit" data-testid="pin-save">{tc('pin.save')}</button>
      </form>
      <div class="message-slot">{note && <div class={note.ok ? 'ok-box' : 'error-box'} role="status" data-testid="pin-note">{note.text}</div>}</div>
    </div>
  );
}
