import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  it('listens on loopback and gives the secret in the URL fragment', () => {
    expect(host.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#secret=[A-Za-z0-9_-]{43}$/);
    expect(host.url.endsWith(host.secret)).toBe(true);
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

  it('answers only under its loopback name (DNS-rebinding guard)', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((ok, fail) => {
      const req = request(`${host.origin}/`, { headers: { host: 'attacker.example' } }, (res) => { res.resume(); ok(res.statusCode!); });
      req.on('error', fail);
      req.end();
    });
    expect(status).toBe(421);
  });

  it('refuses API calls without or with a wrong secret', async () => {
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
