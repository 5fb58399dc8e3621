/** Settings screen: what the terminal stores, with each validation message next to its field. */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Settings as SettingsT, SettingsErrors } from '../../../shared/contracts/terminal-api';
import { api, update, useAppState } from '../store';
import { setLanguage, t, type MessageKey } from '../i18n';
import { friendly } from '../errors';

type Field = keyof SettingsT;

export function Settings({ onSaved }: { onSaved(): void }) {
  const s = useAppState();
  const [form, setForm] = useState<SettingsT | null>(s.settings);
  const [errors, setErrors] = useState<SettingsErrors>({});
  const [status, setStatus] = useState<{ ok: boolean; text: string } | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    if (!form && s.settings) setForm(s.settings);
  }, [s.settings]);
  if (!form) return <div class="settings"><div class="hint">{t('common.loading')}</div></div>;

  const set = <K extends Field>(k: K, v: SettingsT[K]) => {
    setForm({ ...form, [k]: v });
    setStatus(null);
  };

  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    setStatus(null);
    try {
      const r = await api().saveSettings(form);
      if (r.ok) {
        setErrors({});
        setForm(r.settings);
        update({ settings: r.settings });
        setLanguage(r.settings.language);
        setStatus({ ok: true, text: t('settings.saved') });
        onSaved();
      } else {
        setErrors(r.errors);
        setStatus({ ok: false, text: t('settings.invalid') });
      }
    } catch (err) {
      setStatus({ ok: false, text: friendly(err).text });
    } finally {
      setSaving(false);
    }
  };

  const row = (k: Field, control: ComponentChildren, hint?: string) => (
    <div class={`field ${errors[k] ? 'invalid' : ''}`} data-field={k}>
      <label for={`f-${k}`}>{t(`settings.${k}` as MessageKey)}</label>
      <div class="control">
        {control}
        <div class="field-msg" data-testid={`error-${k}`}>{errors[k] ?? hint ?? ''}</div>
      </div>
    </div>
  );
  const text = (k: 'relay_url' | 'terminal_token' | 'manager_token' | 'printer', secret = false) => (
    <input id={`f-${k}`} type={secret ? 'password' : 'text'} value={form[k]} autocomplete="off" spellcheck={false}
      onInput={(e) => set(k, (e.target as HTMLInputElement).value)} />
  );
  const role = s.session?.role ? t(`role.${s.session.role}`) : t('role.none');

  return (
    <form class="settings" data-testid="settings" onSubmit={(e) => void save(e)}>
      <div class="settings-head">
        <h2>{t('settings.title')}</h2>
        <span class="hint">{t('settings.session', { terminal: s.session?.terminal ?? '—', role })}</span>
      </div>
      <div class="fields">
        {row('relay_url', text('relay_url'))}
        {row('terminal_token', text('terminal_token', true))}
        {row('manager_token', text('manager_token', true))}
        {row('printer', text('printer'), t('settings.printerHint'))}
        {row('paper_width', (
          <select id="f-paper_width" value={String(form.paper_width)} onChange={(e) => set('paper_width', Number((e.target as HTMLSelectElement).value) as 58 | 80)}>
            <option value="58">58 mm</option>
            <option value="80">80 mm</option>
          </select>
        ))}
        {row('language', (
          <select id="f-language" value={form.language} onChange={(e) => set('language', (e.target as HTMLSelectElement).value as SettingsT['language'])}>
            <option value="zh-CN">中文</option>
            <option value="en">English</option>
          </select>
        ))}
        {row('qr_mode', (
          <select id="f-qr_mode" value={form.qr_mode} onChange={(e) => set('qr_mode', (e.target as HTMLSelectElement).value as SettingsT['qr_mode'])}>
            <option value="native">{t('settings.qrNative')}</option>
            <option value="raster">{t('settings.qrRaster')}</option>
          </select>
        ))}
        {row('stale_minutes', (
          <input id="f-stale_minutes" type="number" value={String(form.stale_minutes)}
            onInput={(e) => set('stale_minutes', Number((e.target as HTMLInputElement).value))} />
        ))}
      </div>
      <div class="settings-foot">
        <div class={`save-status ${status?.ok ? 'ok' : 'bad'}`} data-testid="settings-status">{status?.text ?? ''}</div>
        <button class="btn primary" type="submit" data-testid="settings-save" disabled={saving}>{t('settings.save')}</button>
      </div>
    </form>
  );
}
