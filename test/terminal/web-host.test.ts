import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTerminalServices, type TerminalServices } from '../../shared/terminal/services';
import { CSP, startWebHost, type WebHost } from '../../shared/terminal/web-host';

let dir: string;
let services: TerminalServices;
let host: WebHost;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pos-web-'));
  const renderer = join(dir, 'renderer');
  mkdirSync(join(renderer, 'assets'), { recursive: true });
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>POS</title><script type="module" src="/assets/app.js"></script>');
  writeFileSync(join(renderer, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'outside the renderer');
  // Unconfigured services (no relay): settings and session work without one.
  services = await startTerminalServices({ userDataDir: join(dir, 'data') });
  host = await startWebHost({ services, rendererDir: renderer, keepAliveMs: 100 });
});
afterAll(async () => {
  await host.close();
  await services.close();
  rmSync(dir, { recursive: true, force: true });
});

const api = (method: string, args: unknown[], auth: string | null = host.secret) =>
  fetch(`${host.origin}/api/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth === null ? {} : { authorization: `Bearer ${auth}` }) },
    body: JSON.stringify({ args }),
  });

describe('web host', () => {
  it('listens on loopback; its address and start links carry no long-lived secret', () => {
    expect(host.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const launch = host.launchUrl();
    expect(launch).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?code=[A-Za-z0-9_-]{32}$/);
    expect(launch).not.toContain(host.secret);
    expect(host.launchUrl()).not.toBe(launch);
  });

  it('exchanges a start code once for an HttpOnly SameSite=Strict cookie that opens the API and the event stream', async () => {
    const launch = host.launchUrl();
    const first = await fetch(launch, { redirect: 'manual' });
    expect(first.status).toBe(303);
    const cookie = first.headers.get('set-cookie')!;
    expect(cookie).toMatch(new RegExp(`^${host.cookieName}=[A-Za-z0-9_-]{43}; Path=/api; HttpOnly; SameSite=Strict$`));
    const pair = cookie.split(';')[0]!;
    // The same code a second time (e.g. read from the browser's command line by someone else): refused.
    const again = await fetch(launch, { redirect: 'manual' });
    expect(again.status).toBe(403);
    expect(again.headers.get('set-cookie')).toBeNull();
    const call = await fetch(`${host.origin}/api/session`, { method: 'POST', headers: { cookie: pair, 'content-type': 'application/json' }, body: '{"args":[]}' });
    expect(call.status).toBe(200);
    expect(await call.json()).toMatchObject({ ok: true, value: { shell: 'web' } });
    const ac = new AbortController();
    const events = await fetch(`${host.origin}/api/events`, { headers: { cookie: pair }, signal: ac.signal });
    expect(events.status).toBe(200);
    ac.abort();
    // A made-up cookie or code opens nothing.
    const forged = await fetch(`${host.origin}/api/session`, { method: 'POST', headers: { cookie: `${host.cookieName}=${'A'.repeat(43)}`, 'content-type': 'application/json' }, body: '{"args":[]}' });
    expect(forged.status).toBe(401);
    expect((await fetch(`${host.origin}/?code=${'A'.repeat(32)}`, { redirect: 'manual' })).status).toBe(403);
  });

  it('refuses an expired start code', async () => {
    let clock = 1_000_000;
    const short = await startWebHost({ services, rendererDir: join(dir, 'renderer'), codeTtlMs: 60_000, now: () => clock });
    try {
      const fresh = short.launchUrl();
      const stale = short.launchUrl();
      clock += 59_999;
      expect((await fetch(fresh, { redirect: 'manual' })).status).toBe(303);
      clock += 1;
      expect((await fetch(stale, { redirect: 'manual' })).status).toBe(403);
    } finally {
      await short.close();
    }
  });

  it('never returns a token to the screens; saveSettings keeps, replaces and clears them', async () => {
    const get = async () => (await (await api('getSettings', [])).json()).value;
    const stored = () => JSON.parse(readFileSync(join(dir, 'data', 'settings.json'), 'utf8'));
    const before = await get();
    expect(before).not.toHaveProperty('terminal_token');
    expect(before).not.toHaveProperty('manager_token');
    expect(before).toMatchObject({ terminal_token_set: false, manager_token_set: false });
    const set = await (await api('saveSettings', [{ terminal_token: 'tok-1', manager_token: 'mgr-1' }])).json();
    expect(set.value.ok).toBe(true);
    expect(JSON.stringify(set)).not.toContain('tok-1');
    expect(set.value.settings).toMatchObject({ terminal_token_set: true, manager_token_set: true, printer: 'preview' });
    // Absent = keep (also when the screen sends back what getSettings gave it).
    await api('saveSettings', [{ ...(await get()), paper_width: 58 }]);
    expect(stored()).toMatchObject({ terminal_token: 'tok-1', manager_token: 'mgr-1', paper_width: 58 });
    // A non-empty string replaces; null clears.
    await api('saveSettings', [{ terminal_token: 'tok-2', manager_token: null }]);
    expect(stored()).toMatchObject({ terminal_token: 'tok-2', manager_token: '' });
    expect(await get()).toMatchObject({ terminal_token_set: true, manager_token_set: false, paper_width: 58 });
    const bad = await (await api('saveSettings', [{ terminal_token: 'has space', bogus: 1 }])).json();
    expect(bad.value.ok).toBe(false);
    expect(bad.value.errors).toHaveProperty('terminal_token');
    await api('saveSettings', [{ terminal_token: null, paper_width: 80 }]);
    expect(stored()).toMatchObject({ terminal_token: '', paper_width: 80 });
  });

  it('keeps the settings file and its folder private to the user', () => {
    expect(statSync(join(dir, 'data', 'settings.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
  });

  it('serves the renderer with the strict CSP; SPA fallback; no path traversal', async () => {
    const page = await fetch(`${host.origin}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toBe(CSP);
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain('<title>POS</title>');
    expect((await fetch(`${host.origin}/assets/app.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${host.origin}/orders/123`)).status).toBe(200);
    expect((await fetch(`${host.origin}/assets/missing.js`)).status).toBe(404);
    const trav = await fetch(`${host.origin}/..%2Fsecret.txt`);
    expect(await trav.text()).not.toContain('outside the renderer');
  });

  it('a file that cannot be read is a 404, not a crash (the stream has an error handler)', async () => {
    // A Unix socket exists and is not a folder, but opening it fails (ENXIO), even for root.
    const { createServer } = await import('node:net');
    const sock = createServer();
    await new Promise<void>((ok) => sock.listen(join(dir, 'renderer', 'assets', 'broken.js'), ok));
    try {
      const res = await fetch(`${host.origin}/assets/broken.js`);
      expect(res.status).toBe(404);
      // Still serving.
      expect((await fetch(`${host.origin}/assets/app.js`)).status).toBe(200);
    } finally {
      await new Promise((ok) => sock.close(ok));
    }
  });

  it('answers only under its loopback name (DNS-rebinding guard)', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((ok, fail) => {
      const req = request(`${host.origin}/`, { headers: { host: 'attacker.example' } }, (res) => { res.resume(); ok(res.statusCode!); });
      req.on('error', fail);
      req.end();
    });
    expect(status).toBe(421);
  });

  it('refuses API calls without or with a wrong secret or session', async () => {
    expect((await api('getSettings', [], null)).status).toBe(401);
    expect((await api('getSettings', [], 'x'.repeat(43))).status).toBe(401);
    expect((await fetch(`${host.origin}/api/events`)).status).toBe(401);
  });

  it('calls methods with the secret; errors travel as ApiResult data naming the field', async () => {
    const ok = await (await api('getSettings', [])).json();
    expect(ok).toMatchObject({ ok: true, value: { printer: 'preview', paper_width: 80 } });
    const bad = await (await api('getOrder', ['no spaces allowed'])).json();
    expect(bad).toMatchObject({ ok: false, error: { code: 'BAD_INPUT', field: 'args[0]' } });
    const save = await (await api('saveSettings', [{ ...ok.value, paper_width: 70 }])).json();
    expect(save).toMatchObject({ ok: true, value: { ok: false, errors: { paper_width: expect.any(String) } } });
    const unknown = await api('deleteEverything', []);
    expect(unknown.status).toBe(404);
    const notJson = await fetch(`${host.origin}/api/getSettings`, { method: 'POST', headers: { authorization: `Bearer ${host.secret}`, 'content-type': 'application/json' }, body: '{' });
    expect(await notJson.json()).toMatchObject({ ok: false, error: { code: 'BAD_INPUT' } });
    const session = await (await api('session', [])).json();
    expect(session.value).toMatchObject({ connection: 'unconfigured', terminal: null, shell: 'web', sandbox_url: null });
  });

  it('streams terminal events over SSE', async () => {
    const ac = new AbortController();
    const res = await fetch(`${host.origin}/api/events`, { headers: { authorization: `Bearer ${host.secret}` }, signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    // First frame: the current link state.
    let first = '';
    while (!/data: .*\n\n/.test(first)) first += (await reader.read()).value ?? '';
    expect(first).toMatch(/^: connected\n\ndata: \{"type":"connection","state":"(unconfigured|connecting)"\}\n\n/);
    const settings = (await (await api('getSettings', [])).json()).value;
    // Changing the relay connection settings reconnects: a connection event follows.
    await api('saveSettings', [{ ...settings, terminal_token: 'changed-token' }]);
    await api('saveSettings', [{ terminal_token: null }]);
    let buf = '';
    while (!buf.includes('"type":"connection"')) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
    }
    ac.abort();
    expect(buf).toMatch(/data: \{"type":"connection","state":"unconfigured"\}\n\n/);
  });
});
