/**
 * Settings screen: what the terminal stores, with each validation message (in the screen's
 * language) next to its field. Only edited fields are sent; tokens are write-only: the screen shows
 * whether each is set and offers replace / clear, never the value.
 */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { Settings as SettingsT, TokenSetting } from '../contract';
import { api, update, useAppState } from '../store';
import { setLanguage, t, type MessageKey } from '../i18n';
import { friendly } from '../errors';
import { buildUpdate, formValues, MAX_LOGO_CHARS, tokenIsSet, translatedErrors, type Edits, type PlainField, type TokenActions } from '../settings-form';
import { PrinterSetup } from '../components/PrinterSetup';

export function Settings({ onSaved }: { onSaved(): void }) {
  const s = useAppState();
  const [edits, setEdits] = useState<Edits>({});
  const [tokens, setTokens] = useState<TokenActions>({});
  /** field → the services' message (translated when shown, so a language switch re-translates it) */
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [status, setStatus] = useState<{ ok: boolean; key?: MessageKey; text?: string } | null>(null);
  const [saving, setSaving] = useState(false);

  const stored = s.settings;
  if (!stored) return <div class="settings"><div class="hint">{t('common.loading')}</div></div>;
  const form = formValues(stored, edits);

  const set = <K extends PlainField>(k: K, v: SettingsT[K]) => {
    setEdits({ ...edits, [k]: v });
    setStatus(null);
  };

  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    setStatus(null);
    try {
      const r = await api().saveSettings(buildUpdate(edits, tokens));
      if (r.ok) {
        setErrors({});
        setEdits({});
        setTokens({});
        update({ settings: r.settings });
        setLanguage(r.settings.language);
        setStatus({ ok: true, key: 'settings.saved' });
        onSaved();
      } else {
        setErrors(r.errors as Record<string, string>);
        setStatus({ ok: false, key: 'settings.invalid' });
      }
    } catch (err) {
      setStatus({ ok: false, text: friendly(err).text });
    } finally {
      setSaving(false);
    }
  };

  const shownErrors = translatedErrors(errors);
  const row = (k: PlainField | TokenSetting, control: ComponentChildren, hint?: string) => (
    <div class={`field ${shownErrors[k] ? 'invalid' : ''}`} data-field={k}>
      <label for={`f-${k}`}>{t(`settings.${k}` as MessageKey)}</label>
      <div class="control">
        {control}
        <div class="field-msg" data-testid={`error-${k}`}>{shownErrors[k] ?? hint ?? ''}</div>
      </div>
    </div>
  );
  const text = (k: 'relay_url' | 'printer' | 'store_name' | 'store_address' | 'cashier_name') => (
    <input id={`f-${k}`} type="text" value={form[k]} autocomplete="off" spellcheck={false}
      onInput={(e) => set(k, (e.target as HTMLInputElement).value)} />
  );
  const token = (k: TokenSetting) => {
    const action = tokens[k] ?? { kind: 'keep' };
    const isSet = tokenIsSet(stored, k);
    const act = (a: TokenActions[TokenSetting]) => {
      setTokens({ ...tokens, [k]: a });
      setStatus(null);
    };
    return (
      <div class="token-control" data-testid={`token-${k}`} data-set={String(isSet)} data-action={action.kind}>
        {action.kind === 'replace' ? (
          <input id={`f-${k}`} type="password" value={action.value} autocomplete="new-password" spellcheck={false}
            placeholder={t('settings.tokenNew')} data-testid={`token-input-${k}`}
            onInput={(e) => act({ kind: 'replace', value: (e.target as HTMLInputElement).value })} />
        ) : (
          <span id={`f-${k}`} class={`token-state ${action.kind === 'clear' || !isSet ? 'unset' : 'set'}`} data-testid={`token-state-${k}`}>
            {action.kind === 'clear' ? t('settings.tokenWillClear') : isSet ? t('settings.tokenSet') : t('settings.tokenUnset')}
          </span>
        )}
        {action.kind === 'keep' ? (
          <>
            <button type="button" class="btn small" data-testid={`token-replace-${k}`} onClick={() => act({ kind: 'replace', value: '' })}>
              {isSet ? t('settings.tokenReplace') : t('settings.tokenEnter')}
            </button>
            {isSet && (
              <button type="button" class="btn small" data-testid={`token-clear-${k}`} onClick={() => act({ kind: 'clear' })}>
                {t('settings.tokenClear')}
              </button>
            )}
          </>
        ) : (
          <button type="button" class="btn small" data-testid={`token-keep-${k}`} onClick={() => act({ kind: 'keep' })}>
            {t('settings.tokenUndo')}
          </button>
        )}
      </div>
    );
  };
  // The logo is read here into a data: URL (what the terminal stores); too large is said at once.
  const pickLogo = (e: Event) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result ?? '');
      if (url.length > MAX_LOGO_CHARS || !/^data:image\//.test(url)) setErrors({ ...errors, store_logo: 'too large' });
      else {
        const { store_logo: _dropped, ...rest } = errors;
        setErrors(rest);
        set('store_logo', url);
      }
    };
    reader.readAsDataURL(file);
  };
  // Whole yuan on screen, fen in the settings (integer arithmetic only).
  const yuanOf = (fen: number) => String((fen - (fen % 100)) / 100);
  const dirty = Object.keys(edits).length > 0;
  const role = s.session?.role ? t(`role.${s.session.role}`) : t('role.none');

  return (
    <form class="settings" data-testid="settings" onSubmit={(e) => void save(e)}>
      <div class="settings-head">
        <h2>{t('settings.title')}</h2>
        <span class="hint">{t('settings.session', { terminal: s.session?.terminal ?? '—', role })}</span>
      </div>
      <div class="fields">
        {row('relay_url', text('relay_url'))}
        {row('printer', text('printer'), t('settings.printerHint'))}
        {row('terminal_token', token('terminal_token'))}
        {row('manager_token', token('manager_token'))}
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
        {row('store_name', text('store_name'))}
        {row('store_address', text('store_address'))}
        {row('cashier_name', text('cashier_name'))}
        {row('confirm_above_fen', (
          <input id="f-confirm_above_fen" type="number" min="0" step="1" value={yuanOf(form.confirm_above_fen)}
            onInput={(e) => {
              const v = (e.target as HTMLInputElement).value.trim();
              set('confirm_above_fen', /^\d{1,9}$/.test(v) ? Number(v) * 100 : -1);
            }} />
        ))}
        {row('customer_display', (
          <select id="f-customer_display" value={form.customer_display} onChange={(e) => set('customer_display', (e.target as HTMLSelectElement).value as SettingsT['customer_display'])}>
            <option value="auto">{t('settings.cdAuto')}</option>
            <option value="window">{t('settings.cdWindow')}</option>
            <option value="off">{t('settings.cdOff')}</option>
          </select>
        ), s.session?.shell === 'web' ? t('settings.customerLink') : undefined)}
        {row('store_logo', (
          <div class="logo-control" data-testid="logo-control">
            {form.store_logo ? <img class="logo-thumb" src={form.store_logo} alt="" /> : <span class="hint">{t('settings.logoNone')}</span>}
            <label class="btn small">
              {t('settings.logoChoose')}
              <input id="f-store_logo" type="file" accept="image/png,image/jpeg,image/gif,image/webp,image/svg+xml" hidden onChange={pickLogo} />
            </label>
            {form.store_logo && <button type="button" class="btn small" onClick={() => set('store_logo', '')}>{t('settings.logoRemove')}</button>}
          </div>
        ))}
      </div>
      <div class="settings-foot">
        <div class={`save-status ${status?.ok ? 'ok' : 'bad'}`} data-testid="settings-status">
          {status ? (status.key ? t(status.key) : status.text) : ''}
        </div>
        <button class="btn primary" type="submit" data-testid="settings-save" disabled={saving}>{t('settings.save')}</button>
      </div>
      <PrinterSetup dirty={dirty} />
    </form>
  );
}
