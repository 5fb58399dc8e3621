/**
 * Terminal settings: validated with zod, stored as JSON in the user data folder. Writes are atomic
 * (temp file + rename) so a crash never leaves a half-written settings file. The file and its
 * folder are private to the user (0600/0700): they hold the relay tokens.
 * The tokens are write-only towards the screens: `publicSettings` is all a screen ever gets.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { SaveSettingsResult, Settings, SettingsErrors, SettingsUpdate } from '../contracts/terminal-api';
import { TerminalError } from './errors';

/** Everything `settings.json` holds, tokens included: terminal services only, never sent to a screen. */
export type StoredSettings = Omit<Settings, 'terminal_token_set' | 'manager_token_set'> & {
  terminal_token: string;
  manager_token: string;
};

export type StoredSettingsResult = { ok: true; settings: StoredSettings } | { ok: false; errors: SettingsErrors };

/** What a screen may see: the tokens become "is it set". */
export function publicSettings(s: StoredSettings): Settings {
  const { terminal_token, manager_token, ...rest } = s;
  return { ...rest, terminal_token_set: terminal_token !== '', manager_token_set: manager_token !== '' };
}

const httpUrl = z.string().refine((s) => {
  if (s === '') return true; // unconfigured is allowed; the connection state says so
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash;
  } catch {
    return false;
  }
}, 'relay_url must be an http(s) URL without query or fragment');

/** `tcp://host:port` (port 1-65535) or `preview`. */
export const PRINTER_PATTERN = /^tcp:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$/;

/** Contract §4: no printer = preview; a printer without a port listens on raw TCP 9100. */
const normalizePrinter = (v: unknown): unknown => {
  if (typeof v !== 'string') return v;
  const t = v.trim();
  if (t === '' || t.toLowerCase() === 'none') return 'preview';
  return /^tcp:\/\/[^:/]+$/i.test(t) ? `${t}:9100` : t;
};

const printer = z.preprocess(normalizePrinter, z.string()).refine((s) => {
  if (s === 'preview') return true;
  const m = PRINTER_PATTERN.exec(s);
  return !!m && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}, 'printer must be "preview" or tcp://host:port');

const token = z.string().max(512).regex(/^[\x21-\x7e]*$/, 'token must be printable ASCII without spaces');

/** One line of printed text: no control characters (they would be printer commands). */
const printedLine = (field: string, max: number) => z.string({ error: `${field} must be text` })
  .max(max, `${field} must be at most ${max} characters`)
  .regex(/^[^\x00-\x1f\x7f]*$/, `${field} must be one line without control characters`);

/** 64 KB of data: URL keeps settings.json small and the display's page free of any file access. */
export const MAX_LOGO_CHARS = 64 * 1024;
const logo = z.string().max(MAX_LOGO_CHARS, `store_logo must be at most ${MAX_LOGO_CHARS} characters`)
  .regex(/^(|data:image\/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2})$/, 'store_logo must be a data:image/…;base64 URL or empty');

export const settingsSchema = z.object({
  relay_url: httpUrl,
  terminal_token: token,
  manager_token: token,
  printer,
  paper_width: z.union([z.literal(58), z.literal(80)], { error: 'paper_width must be 58 or 80' }),
  language: z.enum(['zh-CN', 'en'], { error: 'language must be zh-CN or en' }),
  qr_mode: z.enum(['native', 'raster'], { error: 'qr_mode must be native or raster' }),
  stale_minutes: z.number({ error: 'stale_minutes must be a number' }).int('stale_minutes must be whole minutes').min(1).max(1440),
  store_name: printedLine('store_name', 40),
  store_address: printedLine('store_address', 80),
  store_logo: logo,
  cashier_name: printedLine('cashier_name', 20),
  confirm_above_fen: z.number({ error: 'confirm_above_fen must be a number' }).int('confirm_above_fen must be integer fen').min(0, 'confirm_above_fen must be 0 or more').max(100_000_000_00),
  customer_display: z.enum(['auto', 'window', 'off'], { error: 'customer_display must be auto, window or off' }),
}).strict();

export const DEFAULT_SETTINGS: StoredSettings = {
  relay_url: '',
  terminal_token: '',
  manager_token: '',
  printer: 'preview',
  paper_width: 80,
  language: 'zh-CN',
  qr_mode: 'native',
  stale_minutes: 10,
  store_name: '',
  store_address: '',
  store_logo: '',
  cashier_name: '',
  confirm_above_fen: 500_000,
  customer_display: 'auto',
};

export function validateSettings(input: unknown): StoredSettingsResult {
  const r = settingsSchema.safeParse(input);
  if (r.success) return { ok: true, settings: r.data as StoredSettings };
  const errors: SettingsErrors = {};
  for (const issue of r.error.issues) {
    const key = (issue.path[0] ?? '') as keyof SettingsErrors;
    if (issue.code === 'unrecognized_keys') {
      // Unknown keys are named in the message; attach them to the first known field slot.
      (errors as Record<string, string>)[String(issue.keys?.[0] ?? 'settings')] = `unknown setting ${issue.keys?.join(', ')}`;
      continue;
    }
    if (key && !errors[key]) errors[key] = issue.message;
  }
  return { ok: false, errors };
}

/**
 * Applies a screen's update to the stored settings: absent fields keep their value; a token is
 * kept when absent, replaced by a non-empty string, cleared by `null` or `""`. The `*_token_set`
 * flags a screen sends back are ignored. Anything else not a setting is refused by validation.
 */
export function applyUpdate(current: StoredSettings, update: unknown): unknown {
  if (!update || typeof update !== 'object' || Array.isArray(update)) return update;
  const next: Record<string, unknown> = { ...current };
  for (const [k, v] of Object.entries(update as Record<string, unknown>)) {
    if (k === 'terminal_token_set' || k === 'manager_token_set' || v === undefined) continue;
    if ((k === 'terminal_token' || k === 'manager_token') && v === null) next[k] = '';
    else next[k] = v;
  }
  return next;
}

export class SettingsStore {
  private current: StoredSettings;

  constructor(readonly path: string, overrides: Partial<StoredSettings> = {}) {
    this.current = { ...this.load(), ...overrides };
    try {
      chmodSync(path, 0o600); // written 0644 by older versions: it holds the tokens
    } catch {
      // not there yet: written 0600 on the first save
    }
  }

  private load(): StoredSettings {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...DEFAULT_SETTINGS };
      throw new TerminalError('SETTINGS_UNREADABLE', `cannot read ${this.path}: ${(err as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new TerminalError('SETTINGS_INVALID', `${this.path} is not valid JSON`);
    }
    // Missing keys (older versions) take defaults; present keys must be valid.
    const r = validateSettings({ ...DEFAULT_SETTINGS, ...(raw as object) });
    if (!r.ok) {
      const [field, msg] = Object.entries(r.errors)[0] ?? ['settings', 'invalid'];
      throw new TerminalError('SETTINGS_INVALID', `${this.path}: ${msg}`, { field });
    }
    return r.settings;
  }

  get(): StoredSettings {
    return { ...this.current };
  }

  /** Saves a complete settings object (validated). */
  save(input: unknown): StoredSettingsResult {
    const r = validateSettings(input);
    if (!r.ok) return r;
    writeJsonAtomic(this.path, r.settings);
    this.current = { ...r.settings };
    return { ok: true, settings: this.get() };
  }

  /** Applies a screen's partial update (see applyUpdate) and answers what a screen may see. */
  update(update: SettingsUpdate | unknown): SaveSettingsResult {
    const r = this.save(applyUpdate(this.current, update));
    return r.ok ? { ok: true, settings: publicSettings(r.settings) } : r;
  }
}

/** Creates `dir` (and missing parents) private to the user, and tightens it if it already existed. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dir, 0o700);
  } catch {
    // not ours to change (e.g. a shared parent given by the user): its files are 0600 anyway
  }
}

/** Writes JSON atomically (temp file + rename), readable by the user only (0600), in a 0700 folder. */
export function writeJsonAtomic(path: string, value: unknown): void {
  ensurePrivateDir(dirname(path));
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}
