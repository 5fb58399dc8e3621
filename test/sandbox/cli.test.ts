/** The CLI: init writes both sides, serve prints the listening line, keeps state, stops on SIGTERM. */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadCredentials } from '../../shared/wechatpay/credentials';

const CLI = join(__dirname, '../../shared/sandbox/cli.ts');
const ROOT = join(__dirname, '../..');
// One process (no tsx wrapper in between), so SIGTERM reaches the CLI itself.
const NODE = process.execPath;
const run = (...args: string[]) => ['--import', 'tsx', CLI, ...args];
const dir = mkdtempSync(join(tmpdir(), 'sandbox-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(env: Record<string, string> = {}) {
  const child = spawn(NODE, run('serve', dir), { cwd: ROOT, env: { ...process.env, SANDBOX_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => {
      const j = JSON.parse(l);
      if (j.event === 'listening') resolve(j.url);
      else reject(new Error(l));
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, url, exited };
}

describe('sandbox CLI', () => {
  it('init writes a contract §1 credentials folder (certificate mode) and refuses to overwrite', () => {
    const r = spawnSync(NODE, run('init', dir, '--certificates'), { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const creds = loadCredentials(join(dir, 'merchant'));
    expect(creds.wechatpayPublicKey).toBeUndefined();
    expect(creds.subMerchants.length).toBeGreaterThanOrEqual(3);
    for (const m of creds.subMerchants) {
      expect(m.name).toMatch(/[\u4e00-\u9fff]/);
      expect(m.catalog!.length).toBeGreaterThan(0);
      expect(m.catalog!.every((c) => Number.isInteger(c.price) && /[\u4e00-\u9fff]/.test(c.name))).toBe(true);
    }
    const mj = JSON.parse(readFileSync(join(dir, 'merchant', 'merchant.json'), 'utf8'));
    expect(mj.cert_serial).toMatch(/^[0-9A-F]{40}$/);
    expect(existsSync(join(dir, 'sandbox', 'sandbox.json'))).toBe(true);
    const again = spawnSync(NODE, run('init', dir), { cwd: ROOT, encoding: 'utf8' });
    expect(again.status).not.toBe(0);
    expect(again.stderr).toContain('ALREADY_INITIALIZED');
  });

  it('serve prints {"event":"listening"}, keeps state across restarts, exits 0 on SIGTERM', async () => {
    const first = serve();
    const url1 = await first.url;
    expect(url1).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const clock = await fetch(url1 + '/sandbox/control/clock', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"offset_seconds":1234}' });
    expect(clock.status).toBe(200);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const second = serve();
    const url2 = await second.url;
    expect((await (await fetch(url2 + '/sandbox/control/clock')).json()).offset_seconds).toBe(1234);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('a bad setting stops serve with a message naming it', () => {
    const r = spawnSync(NODE, run('serve', dir), { cwd: ROOT, env: { ...process.env, SANDBOX_TIME_SCALE: 'fast' }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SANDBOX_TIME_SCALE');
    const missing = spawnSync(NODE, run('serve', join(dir, 'nope')), { cwd: ROOT, env: { ...process.env, SANDBOX_PORT: '0' }, encoding: 'utf8' });
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('init');
  });
});
