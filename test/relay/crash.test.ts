/**
 * The relay as a real process (the CLI): killed with SIGKILL while notifications arrive, then
 * restarted: every notification that got a 2xx is applied, nothing is lost.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSandbox, startSandbox } from '../../shared/sandbox/index';
import type { Order } from '../../shared/contracts/relay-api';
import { api } from './env';
import { RELAY_CLI, startRelayChild } from './child';
import { NotificationForge } from './forge';

const CLI = RELAY_CLI;
let dir: string;
let sandbox: { url: string; close(): Promise<void> };
let relayEnv: Record<string, string>;
let child: ChildProcess | null = null;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'relay-crash-'));
  const { merchantDir } = await initSandbox(dir);
  sandbox = await startSandbox({ dir, port: 0 });
  // Port 0: the relay binds a free port itself and prints its URL. The public URL only goes
  // into notify_url, and in this test WeChat Pay (the sandbox) never notifies: the test posts
  // the notifications itself, to the printed URL.
  relayEnv = {
    WECHATPAY_CREDENTIALS_DIR: merchantDir, WECHATPAY_BASE_URL: sandbox.url, RELAY_PUBLIC_URL: 'http://127.0.0.1:9',
    RELAY_PORT: '0', RELAY_DB: join(dir, 'relay.db'), RELAY_QUERY_AFTER_SECONDS: '3600', RELAY_LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await sandbox?.close();
});

describe('relay process', () => {
  it('stops at start with one line naming a bad setting', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI], { env: { ...process.env, ...relayEnv, RELAY_PORT: 'eighty' }, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('RELAY_PORT');
    const r2 = spawnSync(process.execPath, ['--import', 'tsx', CLI], { env: { ...process.env, ...relayEnv, WECHATPAY_CREDENTIALS_DIR: join(dir, 'nowhere') }, encoding: 'utf8' });
    expect(r2.status).not.toBe(0);
    expect(r2.stderr.trim().split('\n')).toHaveLength(1);
    expect(r2.stderr).toContain('merchant.json');
    // A broken participant folder: one line naming that merchant's folder and the file.
    const creds = relayEnv.WECHATPAY_CREDENTIALS_DIR!;
    const broken = join(dir, 'broken-creds');
    cpSync(creds, broken, { recursive: true });
    const mchid = readdirSync(join(broken, 'merchants'))[0]!;
    writeFileSync(join(broken, 'merchants', mchid, 'apiclient_key.pem'), '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n');
    const r3 = spawnSync(process.execPath, ['--import', 'tsx', CLI], { env: { ...process.env, ...relayEnv, WECHATPAY_CREDENTIALS_DIR: broken }, encoding: 'utf8' });
    expect(r3.status).not.toBe(0);
    expect(r3.stderr.trim().split('\n')).toHaveLength(1);
    expect(r3.stderr).toContain(`merchants/${mchid}/apiclient_key.pem`);
  }, 120_000);

  it('SIGKILL while notifications arrive: every 2xx notification is applied after restart', async () => {
    const add = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'add-terminal', 'till-9', '--role', 'cashier'], { env: { ...process.env, ...relayEnv }, encoding: 'utf8' });
    expect(add.status).toBe(0);
    const token = add.stdout.trim().split('\n').pop()!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    let { proc, url } = await startRelayChild(relayEnv);
    child = proc;
    const merchant = (await api(url, 'GET', '/v1/merchants', token)).body.sub_merchants;
    const orders: Order[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await api<Order>(url, 'POST', '/v1/orders', token, { sub_orders: [{ mchid: merchant[0].mchid, description: '面', amount: 100 + i }, { mchid: merchant[1].mchid, description: '茶', amount: 200 }] });
      expect(r.status).toBe(201);
      orders.push(r.body);
    }
    const forge = new NotificationForge(dir);
    const notes = orders.map((o) => forge.build(o));
    const acked = new Set<string>();
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < notes.length) {
        const i = next++;
        if (i === 20 && !killed) {
          killed = true;
          proc.kill('SIGKILL');
        }
        try {
          const res = await fetch(url + '/wechatpay/notify', { method: 'POST', headers: notes[i]!.headers, body: notes[i]!.body });
          if (res.status >= 200 && res.status < 300) acked.add(orders[i]!.combine_out_trade_no);
        } catch { /* connection refused or reset: not acknowledged */ }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r(null) : proc.once('exit', r)));
    expect(proc.signalCode).toBe('SIGKILL');
    expect(acked.size).toBeGreaterThan(5);
    expect(acked.size).toBeLessThan(orders.length);

    ({ proc, url } = await startRelayChild(relayEnv));
    child = proc;
    for (const no of acked) {
      const o = await api<Order>(url, 'GET', `/v1/orders/${no}`, token);
      expect(o.body.state, no).toBe('SUCCESS');
    }
    // The ones never acknowledged are delivered again (as WeChat Pay retries) and apply now.
    for (const [i, o] of orders.entries()) {
      if (acked.has(o.combine_out_trade_no)) continue;
      const n = forge.build(o, { id: JSON.parse(notes[i]!.body).id });
      const res = await fetch(url + '/wechatpay/notify', { method: 'POST', headers: n.headers, body: n.body });
      expect(res.status).toBe(204);
    }
    const all = await api(url, 'GET', '/v1/orders?limit=1000', token);
    expect(all.body.orders.filter((o: Order) => o.state === 'SUCCESS')).toHaveLength(orders.length);
    // Graceful shutdown on SIGTERM.
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 150_000);
});
