import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, SettingsStore, validateSettings } from '../../shared/terminal/settings';

const dir = mkdtempSync(join(tmpdir(), 'pos-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('settings', () => {
  it('accepts a valid configuration', () => {
    const r = validateSettings({ ...DEFAULT_SETTINGS, relay_url: 'https://relay.example.com', terminal_token: 'abc', printer: 'tcp://192.168.1.50:9100', paper_width: 58 });
    expect(r.ok).toBe(true);
  });

  it('names each invalid field', () => {
    const r = validateSettings({
      ...DEFAULT_SETTINGS, relay_url: 'ftp://x', printer: 'usb:/dev/lp0', paper_width: 70, language: 'fr', stale_minutes: 0.5, terminal_token: 'has space',
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(Object.keys(r.errors).sort()).toEqual(['language', 'paper_width', 'printer', 'relay_url', 'stale_minutes', 'terminal_token']);
    expect(r.errors.printer).toMatch(/tcp:\/\/host:port/);
    expect(r.errors.paper_width).toMatch(/58 or 80/);
  });

  it('no printer means preview; a printer without a port gets 9100', () => {
    for (const none of ['', 'none']) {
      const r = validateSettings({ ...DEFAULT_SETTINGS, printer: none });
      expect(r.ok && r.settings.printer).toBe('preview');
    }
    const r = validateSettings({ ...DEFAULT_SETTINGS, printer: 'tcp://192.168.1.50' });
    expect(r.ok && r.settings.printer).toBe('tcp://192.168.1.50:9100');
  });

  it('rejects a printer port out of range and unknown keys', () => {
    expect(validateSettings({ ...DEFAULT_SETTINGS, printer: 'tcp://10.0.0.1:70000' }).ok).toBe(false);
    const r = validateSettings({ ...DEFAULT_SETTINGS, colour: 'red' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(JSON.stringify(r.errors)).toContain('colour');
  });

  it('stores atomically in the user data folder and reloads; invalid saves change nothing', () => {
    const path = join(dir, 'a', 'settings.json');
    const s = new SettingsStore(path);
    expect(s.get()).toEqual(DEFAULT_SETTINGS);
    const ok = s.save({ ...DEFAULT_SETTINGS, printer: 'tcp://127.0.0.1:9100', language: 'en' });
    expect(ok.ok).toBe(true);
    const bad = s.save({ ...DEFAULT_SETTINGS, printer: 'nope' });
    expect(bad.ok).toBe(false);
    expect(JSON.parse(readFileSync(path, 'utf8')).printer).toBe('tcp://127.0.0.1:9100');
    expect(readdirSync(join(dir, 'a'))).toEqual(['settings.json']); // no temp files left behind
    expect(new SettingsStore(path).get().language).toBe('en');
  });

  it('a corrupt settings file is a clear error naming the file', () => {
    const path = join(dir, 'corrupt.json');
    writeFileSync(path, '{not json');
    expect(() => new SettingsStore(path)).toThrow(/corrupt\.json is not valid JSON/);
    writeFileSync(path, JSON.stringify({ paper_width: 33 }));
    expect(() => new SettingsStore(path)).toThrow(/58 or 80/);
  });
});
