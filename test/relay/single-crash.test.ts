/**
 * The relay as a real process (the CLI), killed with SIGKILL after it recorded a single-merchant
 * sale and before WeChat Pay received the create: the create request goes to a server that
 * accepts the connection and never answers (WeChat Pay is never reached). Restarted against the
 * sandbox, the relay re-sends the recorded basic Native create, and the sale completes.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSandbox, startSandbox } from '../../shared/sandbox/index';
import type { Order } from '../../shared/contracts/relay-api';
import { api, until } from './env';
import { RELAY_CLI, startRelayChild } from './child';

const CLI = RELAY_CLI;
let dir: string;
let sandbox: { url: string; close(): Promise<void> };
let relayEnv: Record<string, string>;
let child: ChildProcess | null = null;

/** Accepts connections and never answers; remembers what arrived. */
let hole: Server;
let holeUrl: string;
const holeSockets = new Set<Socket>();
let holeData = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'relay-single-crash-'));
  const { merchantDir } = await initSandbox(dir);
  sandbox = await startSandbox({ dir, port: 0 });
  hole = createServer((s) => {
    holeSockets.add(s);
    s.on('data', (d) => { holeData += String(d); });
    s.on('close', () => holeSockets.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
  holeUrl = `http://127.0.0.1:${(hole.address() as { port: number }).port}`;
  // Notifications cannot reach this relay (port 0, public URL nowhere): the query after 1 s of
  // silence is what brings the paid sale to SUCCESS.
  relayEnv = {
    WECHATPAY_CREDENTIALS_DIR: merchantDir, RELAY_PUBLIC_URL: 'http://127.0.0.1:9', RELAY_PORT: '0', RELAY_DB: join(dir, 'relay.db'),
    RELAY_QUERY_AFTER_SECONDS: '1', RELAY_RECONCILE_TICK_MS: '100', RELAY_LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const s of holeSockets) s.destroy();
  await new Promise((r) => hole?.close(r));
  await sandbox?.close();
});

describe('single sale, relay killed between recording and calling WeChat Pay', () => {
  it('completes after the restart: the recorded create is re-sent by its merchant, paid, and a retry with the same Idempotency-Key gets it', async () => {
    const add = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'add-terminal', 'till-9', '--role', 'cashier'], { env: { ...process.env, ...relayEnv }, encoding: 'utf8' });
    expect(add.status).toBe(0);
    const token = add.stdout.trim().split('\n').pop()!;

    let { proc, url } = await startRelayChild({ ...relayEnv, WECHATPAY_BASE_URL: holeUrl });
    child = proc;
    const mchid = (await api(url, 'GET', '/v1/merchants', token)).body.sub_merchants[2].mchid as string;
    const body = { sub_orders: [{ mchid, description: '咖啡', amount: 1600 }] };
    const key = 'crash-single-1';
    // Never answered: the relay waits on the black hole until it is killed.
    const pending = api(url, 'POST', '/v1/orders', token, body, { 'Idempotency-Key': key }).catch((err: Error) => err);
    await until(async () => holeData.includes('POST /v3/pay/transactions/native'), 15_000, 20);
    const db = new Database(relayEnv.RELAY_DB!, { readonly: true });
    const rows = db.prepare('SELECT o.combine_out_trade_no AS no, o.kind, o.creation, s.out_trade_no, s.mchid FROM orders o JOIN sub_orders s USING (combine_out_trade_no)').all() as {
      no: string; kind: string; creation: string; out_trade_no: string; mchid: string;
    }[];
    db.close();
    // Recorded before the call: one single sale, still PENDING.
    expect(rows).toHaveLength(1);
    const rec = rows[0]!;
    expect(rec).toMatchObject({ kind: 'single', creation: 'PENDING', mchid });
    expect(holeData).toContain(rec.out_trade_no);
    proc.kill('SIGKILL');
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r(null) : proc.once('exit', r)));
    expect(proc.signalCode).toBe('SIGKILL');
    expect(await pending).toBeInstanceOf(Error);
    // WeChat Pay (the sandbox) never heard of it.
    const before = await api<{ requests: unknown[] }>(sandbox.url, 'GET', '/sandbox/requests?path=/v3/pay/transactions/native', null);
    expect(before.body.requests).toEqual([]);

    ({ proc, url } = await startRelayChild({ ...relayEnv, WECHATPAY_BASE_URL: sandbox.url }));
    child = proc;
    const created = await until(async () => {
      const o = (await api<Order>(url, 'GET', `/v1/orders/${rec.no}`, token)).body;
      return o.creation === 'CREATED' && o.code_url ? o : null;
    }, 20_000);
    expect(created).toMatchObject({ kind: 'single', state: 'NOTPAY', total_amount: 1600 });
    const creates = (await api<{ requests: { method: string; mchid: string; status: number }[] }>(sandbox.url, 'GET', '/sandbox/requests?path=/v3/pay/transactions/native', null)).body.requests;
    expect(creates.map((c) => [c.method, c.mchid, c.status])).toEqual([['POST', mchid, 200]]);
    // The cashier's retry of the same sale gets the same order, not a second one.
    const retry = await api<Order>(url, 'POST', '/v1/orders', token, body, { 'Idempotency-Key': key });
    expect(retry.status).toBe(201);
    expect(retry.body.combine_out_trade_no).toBe(rec.no);
    expect(retry.body.code_url).toBe(created.code_url);

    const paid = await api(sandbox.url, 'POST', '/sandbox/pay', null, { code_url: created.code_url, notify: false });
    expect(paid.status).toBe(200);
    const done = await until(async () => {
      const o = (await api<Order>(url, 'GET', `/v1/orders/${rec.no}`, token)).body;
      return o.state === 'SUCCESS' ? o : null;
    }, 20_000);
    expect(done.sub_orders[0]!.transaction_id).toBe(paid.body.sub_orders[0].transaction_id);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);
});
