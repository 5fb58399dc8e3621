/**
 * The settings form's rules: only what the user changed is sent (an absent field keeps its stored
 * value, so a language switched in the header is not reverted by saving other fields), tokens are
 * write-only (set / replace / clear, never shown), and field errors are shown in the screen's language.
 */
import type { Settings, SettingsErrors, SettingsUpdate, TokenSetting } from './contract';
import { t, type MessageKey } from './i18n';

/** The editable, non-secret fields. */
export type PlainField = 'relay_url' | 'printer' | 'paper_width' | 'language' | 'qr_mode' | 'stale_minutes'
  | 'store_name' | 'store_address' | 'store_logo' | 'cashier_name' | 'confirm_above_fen' | 'customer_display';
export type Edits = Partial<Pick<Settings, PlainField>>;

export type TokenAction = { kind: 'keep' } | { kind: 'replace'; value: string } | { kind: 'clear' };
export type TokenActions = Partial<Record<TokenSetting, TokenAction>>;

export const TOKENS: readonly TokenSetting[] = ['terminal_token', 'manager_token'];

/** What the form shows: the stored settings overlaid with this form's edits. */
export function formValues(stored: Settings, edits: Edits): Settings {
  return { ...stored, ...edits };
}

/**
 * The `saveSettings` argument: edited fields only; a token only when replaced (its new value) or
 * cleared (`null`). A "replace" left empty keeps the token, so an opened field cannot wipe it.
 */
export function buildUpdate(edits: Edits, tokens: TokenActions): SettingsUpdate {
  const update: SettingsUpdate = { ...edits };
  for (const k of TOKENS) {
    const a = tokens[k];
    if (a?.kind === 'replace' && a.value !== '') update[k] = a.value;
    else if (a?.kind === 'clear') update[k] = null;
  }
  return update;
}

export function tokenIsSet(stored: Settings, k: TokenSetting): boolean {
  return k === 'terminal_token' ? stored.terminal_token_set : stored.manager_token_set;
}

/** Message keys of each field's validation error, in the screen's language. */
const FIELD_ERRORS: Record<string, MessageKey> = {
  relay_url: 'settings.err.relay_url',
  terminal_token: 'settings.err.token',
  manager_token: 'settings.err.token',
  printer: 'settings.err.printer',
  paper_width: 'settings.err.paper_width',
  language: 'settings.err.language',
  qr_mode: 'settings.err.qr_mode',
  stale_minutes: 'settings.err.stale_minutes',
  store_name: 'settings.err.store_name',
  store_address: 'settings.err.store_address',
  store_logo: 'settings.err.store_logo',
  cashier_name: 'settings.err.cashier_name',
  confirm_above_fen: 'settings.err.confirm_above_fen',
  customer_display: 'settings.err.customer_display',
};

/** The store logo's limit (the terminal refuses more): 64 KB of data: URL. */
export const MAX_LOGO_CHARS = 64 * 1024;

/**
 * The terminal services validate in English (their messages go to logs too); the screen names the
 * rule in its own language. A field the screen does not know keeps the services' words.
 */
export function fieldErrorText(field: string, message: string): string {
  const key = FIELD_ERRORS[field];
  return key ? t(key) : message;
}

export function translatedErrors(errors: SettingsErrors): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, message] of Object.entries(errors)) if (message) out[field] = fieldErrorText(field, message);
  return out;
}
