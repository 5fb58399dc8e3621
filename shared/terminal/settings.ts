/**
 * Terminal settings: validated with zod, stored as JSON in the user data folder. Writes are atomic
 * (temp file + rename) so a crash never leaves a half-written settings file.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { SaveSettingsResult, Settings, SettingsErrors } from '../contracts/terminal-api';
import { TerminalError } from './errors';

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

export const settingsSchema = z.object({
  relay_url: httpUrl,
  terminal_token: token,
  manager_token: token,
  printer,
  paper_width: z.union([z.literal(58), z.literal(80)], { error: 'paper_width must be 58 or 80' }),
  language: z.enum(['zh-CN', 'en'], { error: 'language must be zh-CN or en' }),
  qr_mode: z.enum(['native', 'raster'], { error: 'qr_mode must be native or raster' }),
  stale_minutes: z.number({ error: 'stale_minutes must be a number' }).int('stale_minutes must be whole minutes').min(1).max(1440),
}).strict();

export const DEFAULT_SETTINGS: Settings = {
  relay_url: '',
  terminal_token: '',
  manager_token: '',
  printer: 'preview',
  paper_width: 80,
  language: 'zh-CN',
  qr_mode: 'native',
  stale_minutes: 10,
};

export function validateSettings(input: unknown): SaveSettingsResult {
  const r = settingsSchema.safeParse(input);
  if (r.success) return { ok: true, settings: r.data as Settings };
  const errors: SettingsErrors = {};
  for (const issue of r.error.issues) {
    const key = (issue.path[0] ?? '') as keyof Settings;
    if (issue.code === 'unrecognized_keys') {
      // Unknown keys are named in the message; attach them to the first known field slot.
      (errors as Record<string, string>)[String(issue.keys?.[0] ?? 'settings')] = `unknown setting ${issue.keys?.join(', ')}`;
      continue;
    }
    if (key && !errors[key]) errors[key] = issue.message;
  }
  return { ok: false, errors };
}

export class SettingsStore {
  private current: Settings;

  constructor(readonly path: string, overrides: Partial<Settings> = {}) {
    this.current = { ...this.load(), ...overrides };
  }

  private load(): Settings {
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

  get(): Settings {
    return { ...this.current };
  }

  save(input: unknown): SaveSettingsResult {
    const r = validateSettings(input);
    if (!r.ok) return r;
    writeJsonAtomic(this.path, r.settings);
    this.current = { ...r.settings };
    return { ok: true, settings: this.get() };
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}
