/** `npm start` without the Electron binary and without a display: embedded stack, URL printed, says which. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

it('npm start runs the embedded default, says what it did, and serves a ready terminal', async () => {
  const root = resolve(__dirname, '..', '..');
  const dataDir = mkdtempSync(join(tmpdir(), 'pos-start-'));
  const env: NodeJS.ProcessEnv = { ...process.env, POS_DATA_DIR: dataDir, POS_NO_ELECTRON: '1' };
  delete env.DISPLAY;
  delete env.WAYLAND_DISPLAY;
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/start.ts')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  try {
    const url = await new Promise<string>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`no URL printed:\n${out}`)), 80_000);
      child.stdout.on('data', () => {
        const m = /^(http:\/\/127\.0\.0\.1:\d+\/#secret=\S+)$/m.exec(out);
        if (m) { clearTimeout(t); ok(m[1]!); }
      });
      child.on('exit', (c) => fail(new Error(`start exited ${c}:\n${out}`)));
    });
    expect(out).toContain(`created data folder ${dataDir}`);
    expect(out).toMatch(/Electron binary not present and no display/);
    const origin = url.slice(0, url.indexOf('/#'));
    const secret = url.slice(url.indexOf('secret=') + 7);
    const page = await fetch(origin + '/');
    expect(page.status).toBe(200);
    const r = await fetch(`${origin}/api/session`, { method: 'POST', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }, body: '{"args":[]}' });
    const s = (await r.json()) as { ok: boolean; value: { terminal: string; manager: boolean; sandbox_url: string } };
    expect(s.ok).toBe(true);
    expect(s.value.terminal).toBe('cashier-1');
    expect(s.value.manager).toBe(true);
    expect(s.value.sandbox_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/sandbox$/);
  } finally {
    const exited = new Promise((ok) => child.once('exit', ok));
    child.kill('SIGTERM');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 100_000);
