/**
 * `npm start` without the Electron binary: embedded stack, a single-use start link printed (no
 * display), says which; one copy per data folder; SIGTERM stops it cleanly. With a display
 * (Xvfb) and Debian's Chromium: the app opens without the secret on Chromium's command line,
 * without the "unsupported flag" bar, and SIGTERM leaves no browser and no profile behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..');
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Started {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in the output so far or to come. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

function startApp(env: NodeJS.ProcessEnv): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/start.ts')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners = new Set<() => void>();
  const add = (d: Buffer) => { out += d; for (const l of listeners) l(); };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => { for (const l of listeners) l(); ok(code); }));
  return {
    child,
    output: () => out,
    exited,
    waitFor: (re, ms = 80_000) => new Promise((ok, fail) => {
      const t = setTimeout(() => { listeners.delete(check); fail(new Error(`no ${re} in:\n${out}`)); }, ms);
      const check = () => {
        const m = re.exec(out);
        if (m) { clearTimeout(t); listeners.delete(check); ok(m); } else if (child.exitCode !== null) {
          clearTimeout(t); listeners.delete(check); fail(new Error(`start exited ${child.exitCode} before ${re}:\n${out}`));
        }
      };
      listeners.add(check);
      check();
    }),
  };
}

function headlessEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, POS_DATA_DIR: dataDir, POS_NO_ELECTRON: '1' };
  delete env.DISPLAY;
  delete env.WAYLAND_DISPLAY;
  return env;
}

describe('npm start', () => {
  it('runs the embedded default, prints a single-use start link, refuses a second copy, stops on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pos-start-'));
    dirs.push(dataDir);
    const app = startApp(headlessEnv(dataDir));
    try {
      const [, link] = await app.waitFor(/^(http:\/\/127\.0\.0\.1:\d+\/\?code=[A-Za-z0-9_-]+)$/m);
      expect(app.output()).toContain(`created data folder ${dataDir}`);
      expect(app.output()).toMatch(/Electron binary not present and no display/);
      expect(app.output()).not.toMatch(/secret/i);
      const origin = new URL(link!).origin;
      expect((await fetch(`${origin}/`)).status).toBe(200);
      // Without the session the API is closed; the link opens it once.
      expect((await fetch(`${origin}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"args":[]}' })).status).toBe(401);
      const exchanged = await fetch(link!, { redirect: 'manual' });
      expect(exchanged.status).toBe(303);
      const cookie = exchanged.headers.get('set-cookie')!.split(';')[0]!;
      expect((await fetch(link!, { redirect: 'manual' })).status).toBe(403);
      const r = await fetch(`${origin}/api/session`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{"args":[]}' });
      const s = (await r.json()) as { ok: boolean; value: { terminal: string; manager: boolean; sandbox_url: string } };
      expect(s.ok).toBe(true);
      expect(s.value.terminal).toBe('cashier-1');
      expect(s.value.manager).toBe(true);
      expect(s.value.sandbox_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/sandbox$/);
      await app.waitFor(/the app is open in the browser/);
      // The data folder is the user's only.
      for (const p of [dataDir, join(dataDir, 'terminal'), join(dataDir, 'merchant')]) expect(readMode(p)).toBe(0o700);
      for (const p of ['embedded.json', 'terminal/settings.json', 'pos.lock']) expect(readMode(join(dataDir, p))).toBe(0o600);

      // A second copy on the same data folder stops at once and says why.
      const second = startApp(headlessEnv(dataDir));
      expect(await second.exited).toBe(1);
      expect(second.output()).toMatch(new RegExp(`another copy of the cashier app \\(pid ${app.child.pid}\\) is using this data folder`));
    } finally {
      app.child.kill('SIGTERM');
    }
    expect(await app.exited).toBe(0);
    expect(app.output()).toContain('[start] stopping');
    expect(existsSync(join(dataDir, 'pos.lock'))).toBe(false);
  }, 120_000);

  it('takes over the lock of a copy that died without releasing it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pos-start-stale-'));
    dirs.push(dataDir);
    // A pid that surely ran and is gone now: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(join(dataDir, 'pos.lock'), `${dead}\n`);
    const app = startApp(headlessEnv(dataDir));
    try {
      await app.waitFor(/^http:\/\/127\.0\.0\.1:\d+\/\?code=/m);
      expect(readFileSync(join(dataDir, 'pos.lock'), 'utf8').trim()).toBe(String(app.child.pid));
    } finally {
      app.child.kill('SIGTERM');
    }
    expect(await app.exited).toBe(0);
  }, 120_000);

  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  const xvfb = existsSync('/usr/bin/Xvfb');
  it.skipIf(!chromium || !xvfb)('opens Chromium with no secret on its command line and no flag bar; SIGTERM leaves no browser or profile', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pos-start-ui-'));
    dirs.push(dataDir);
    // Xvfb picks a free display itself and tells us which (no display number guessed).
    const x = spawn('/usr/bin/Xvfb', ['-displayfd', '1', '-screen', '0', '1366x900x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const display = await new Promise<string>((ok) => x.stdout!.once('data', (d: Buffer) => ok(d.toString().trim())));
    const env: NodeJS.ProcessEnv = { ...headlessEnv(dataDir), DISPLAY: `:${display}` };
    const app = startApp(env);
    let profile = '';
    try {
      [, profile] = (await app.waitFor(/opening the app in Chromium \(.*, profile (\S+)\)/)) as unknown as [string, string];
      // The browser exchanged its start link (it came from a file of the private profile).
      await app.waitFor(/the app is open in the browser/);
      const browsers = processesWith(profile);
      expect(browsers.length).toBeGreaterThan(0);
      for (const cmd of browsers) expect(cmd).not.toMatch(/code=|secret=/);
      // The browser process itself (its helpers, --type=…, get other flags).
      const main = browsers.filter((c) => !c.includes('--type='));
      expect(main).toHaveLength(1);
      expect(main[0]).toContain('--disable-features=Translate');
      expect(main[0]).toContain('--lang=zh-CN');
      // As root Chromium needs --no-sandbox; --test-type keeps its warning bar off the screen.
      if (process.getuid?.() === 0) expect(main[0]).toMatch(/--no-sandbox.*--test-type/);
      else expect(main[0]).not.toContain('--no-sandbox');
      expect(readMode(profile)).toBe(0o700);
    } finally {
      app.child.kill('SIGTERM');
    }
    expect(await app.exited).toBe(0);
    expect(app.output()).not.toMatch(/ENOTEMPTY|Error/);
    expect(existsSync(profile)).toBe(false);
    expect(processesWith(profile)).toEqual([]);
    const xExit = new Promise((ok) => x.once('exit', ok));
    x.kill('SIGTERM');
    await xExit;
  }, 120_000);
});

const readMode = (p: string): number => statSync(p).mode & 0o777;

/** Command lines of running processes that mention `needle`. */
function processesWith(needle: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle) && !cmd.includes('vitest')) out.push(cmd);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
