/** The sandbox answers only under its own names (DNS rebinding) and its phone page speaks Beijing time. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSandbox, startSandbox } from '../../shared/sandbox';
import { formatBeijingBill } from '../../shared/wechatpay/time';
import { combineRequest, send, setup, type Env } from './helpers';

let env: Env;
beforeAll(async () => {
  env = await setup();
});
afterAll(() => env.close());

/** A raw request with a chosen Host header (fetch does not let a page choose it; a rebinding page gets its own name there). */
function withHost(url: string, path: string, host: string, method = 'GET', body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method, headers: { Host: host, ...(body ? { 'Content-Type': 'application/json' } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('Host check', () => {
  it('answers 421 under a foreign name, also for /sandbox/pay and APIv3; loopback names work', async () => {
    const port = new URL(env.url).port;
    const c = await send(env, 'POST', '/v3/combine-transactions/native', combineRequest(env));
    const pay = JSON.stringify({ code_url: c.json.code_url, notify: false });
    for (const [path, method, body] of [['/sandbox', 'GET'], ['/sandbox/orders', 'GET'], ['/sandbox/pay', 'POST', pay], ['/v3/certificates', 'GET']] as const) {
      const r = await withHost(env.url, path, `evil.example:${port}`, method, body);
      expect(r.status, path).toBe(421);
      expect(JSON.parse(r.text).code).toBe('MISDIRECTED_REQUEST');
    }
    expect((await withHost(env.url, '/sandbox/orders', `127.0.0.1:${Number(port) + 1}`)).status).toBe(421);
    expect((await withHost(env.url, '/sandbox/orders', `localhost:${port}`)).status).toBe(200);
    expect((await withHost(env.url, '/sandbox/orders', `LOCALHOST:${port}`)).status).toBe(200);
    // The order stayed unpaid through all the refused attempts; a loopback name pays it.
    expect((await withHost(env.url, '/sandbox/pay', `127.0.0.1:${port}`, 'POST', pay)).status).toBe(200);
  });

  it('accepts names given in allowedHosts (a LAN address for a real phone)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-host-'));
    try {
      await initSandbox(dir);
      const sb = await startSandbox({ dir, allowedHosts: ['pos-sandbox.lan'] });
      try {
        const port = new URL(sb.url).port;
        expect((await withHost(sb.url, '/sandbox/orders', `pos-sandbox.lan:${port}`)).status).toBe(200);
        expect((await withHost(sb.url, '/sandbox/orders', `other.lan:${port}`)).status).toBe(421);
      } finally {
        await sb.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('folders of an older init', () => {
  it('serve tightens a world-readable sandbox folder and sandbox.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-perm-'));
    try {
      await initSandbox(dir);
      chmodSync(join(dir, 'sandbox'), 0o755);
      chmodSync(join(dir, 'sandbox', 'sandbox.json'), 0o644);
      const sb = await startSandbox({ dir });
      await sb.close();
      expect(statSync(join(dir, 'sandbox')).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, 'sandbox', 'sandbox.json')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('phone page', () => {
  it('shows times in Beijing time, not UTC', async () => {
    const req = combineRequest(env, { time_expire: '2030-01-02T03:04:05+08:00' });
    await send(env, 'POST', '/v3/combine-transactions/native', req);
    const html = await (await fetch(env.url + '/sandbox')).text();
    // time_expire is clamped to 7 days: the page shows that moment in Beijing time.
    const listed = (await (await fetch(env.url + '/sandbox/orders')).json()).orders.find((o: any) => o.combine_out_trade_no === req.combine_out_trade_no);
    const beijing = formatBeijingBill(Date.parse(listed.expires_at));
    expect(html).toContain(`最晚支付 ${beijing}`);
    const utc = new Date(Date.parse(listed.expires_at)).toISOString().slice(0, 19).replace('T', ' ');
    expect(beijing).not.toBe(utc);
    expect(html).not.toContain(utc);
    expect(html).toContain('北京时间');
  });
});
