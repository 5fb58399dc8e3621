/**
 * The relay as a real process, killed with SIGKILL in the middle of a refund: after the refund
 * was recorded but before WeChat Pay got it, and after WeChat Pay made it but before its answer
 * arrived. After a restart each refund completes, exactly once at WeChat Pay.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSandbox, startSandbox } from '../../shared/sandbox/index';
import type { Order } from '../../shared/contracts/relay-api';
import { api, until } from './env';
import { RELAY_CLI, startRelayChild } from './child';
import { sandboxFaults } from '../e2e/sandbox-client';

const CLI = RELAY_CLI;
let dir: string;
let sandbox: { url: string; close(): Promise<void> };
let relayEnv: Record<string, string>;
let child: ChildProcess | null = null;
/** Accepts connections and never answers: a WeChat Pay that the request never really reaches. */
let hole: Server;
let holeUrl: string;
const held: Socket[] = [];

function startChild(extra: Record<string, string> = {}): Promise<{ proc: ChildProcess; url: string }> {
  return startRelayChild({ ...relayEnv, ...extra }, (proc) => { child = proc; });
}

async function kill9(proc: ChildProcess): Promise<void> {
  const gone = new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r(null) : proc.once('exit', r)));
  proc.kill('SIGKILL');
  await gone;
  expect(proc.signalCode).toBe('SIGKILL');
}

async function stop(proc: ChildProcess): Promise<void> {
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await gone;
}

function token(role: string, name: string): string {
  const add = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'add-terminal', name, '--role', role], { env: { ...process.env, ...relayEnv }, encoding: 'utf8' });
  expect(add.status).toBe(0);
  return add.stdout.trim().split('\n').pop()!;
}

async function sandboxRefunds(): Promise<{ out_refund_no: string; out_trade_no: string; status: string }[]> {
  return (await api(sandbox.url, 'GET', '/sandbox/refunds', null)).body.refunds;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'relay-refund-crash-'));
  const { merchantDir } = await initSandbox(dir);
  sandbox = await startSandbox({ dir, port: 0, refundDelayMs: 300, refundMinIntervalSeconds: 0 });
  hole = createServer((s) => held.push(s));
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
  holeUrl = `http://127.0.0.1:${(hole.address() as { port: number }).port}`;
  // No notifications reach the relay (its public URL is nowhere): payments and refunds are learned
  // by query, after RELAY_QUERY_AFTER_SECONDS = 1.
  relayEnv = {
    WECHATPAY_CREDENTIALS_DIR: merchantDir, WECHATPAY_BASE_URL: sandbox.url, RELAY_PUBLIC_URL: 'http://127.0.0.1:9',
    RELAY_PORT: '0', RELAY_DB: join(dir, 'relay.db'), RELAY_QUERY_AFTER_SECONDS: '1', RELAY_RECONCILE_TICK_MS: '100', RELAY_LOG_LEVEL: 'warn',
  };
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && !child.signalCode) child.kill('SIGKILL');
  for (const s of held) s.destroy();
  hole?.close();
  await sandbox?.close();
});

describe('refunds survive kill -9', () => {
  it('between recording and calling WeChat Pay, and between WeChat Pay acting and its answer: each completes once after restart', async () => {
    const cashier = token('cashier', 'till-1');
    const manager = token('manager', 'boss');
    let { proc, url } = await startChild();
    const merchants = (await api(url, 'GET', '/v1/merchants', cashier)).body.sub_merchants;
    const created = await api<Order>(url, 'POST', '/v1/orders', cashier, { sub_orders: [{ mchid: merchants[0].mchid, description: '面', amount: 2000 }, { mchid: merchants[1].mchid, description: '茶', amount: 900 }] });
    expect(created.status).toBe(201);
    const no = created.body.combine_out_trade_no;
    expect((await api(sandbox.url, 'POST', '/sandbox/pay', null, { code_url: created.body.code_url })).status).toBe(200);
    await until(async () => (await api<Order>(url, 'GET', `/v1/orders/${no}`, cashier)).body.state === 'SUCCESS', 20_000);
    const [a, b] = created.body.sub_orders;
    await stop(proc);

    // 1. WeChat Pay unreachable in a way that hangs: the refund is recorded, its request is on the
    //    wire to nowhere when the relay dies.
    ({ proc, url } = await startChild({ WECHATPAY_BASE_URL: holeUrl }));
    const before = held.length;
    const lost = api(url, 'POST', `/v1/orders/${no}/refunds`, manager, { out_trade_no: a!.out_trade_no, amount: 700, reason: '退一碗' }).catch(() => null);
    await until(async () => held.length > before, 10_000, 20);
    await kill9(proc);
    expect(await lost).toBeNull();
    expect((await sandboxRefunds()).filter((r) => r.out_trade_no === a!.out_trade_no)).toHaveLength(0);

    // 2. Restarted against WeChat Pay: the recorded refund is sent (same number) and completes.
    ({ proc, url } = await startChild());
    const first = await until(async () => {
      const o = (await api<Order>(url, 'GET', `/v1/orders/${no}`, cashier)).body;
      return o.refunds?.[0]?.status === 'SUCCESS' && o;
    }, 20_000);
    expect(first.refunds).toHaveLength(1);
    expect(first.refunds![0]).toMatchObject({ out_trade_no: a!.out_trade_no, amount: 700, reason: '退一碗', terminal: 'boss' });
    expect((await sandboxRefunds()).filter((r) => r.out_trade_no === a!.out_trade_no).map((r) => r.out_refund_no)).toEqual([first.refunds![0]!.out_refund_no]);

    // 3. WeChat Pay makes the refund but answers slowly; the relay dies before the answer.
    await sandboxFaults(sandbox.url, { path: '/v3/refund/domestic/refunds', method: 'POST', kind: 'SLOW', delay_ms: 5000, count: 1 });
    const slow = api(url, 'POST', `/v1/orders/${no}/refunds`, manager, { out_trade_no: b!.out_trade_no, amount: 900 }).catch(() => null);
    await until(async () => (await sandboxRefunds()).some((r) => r.out_trade_no === b!.out_trade_no), 10_000, 20);
    await kill9(proc);
    expect(await slow).toBeNull();
    ({ proc, url } = await startChild());
    const second = await until(async () => {
      const o = (await api<Order>(url, 'GET', `/v1/orders/${no}`, cashier)).body;
      return o.refunds?.length === 2 && o.refunds.every((r) => r.status === 'SUCCESS') && o;
    }, 20_000);
    expect(second.sub_orders.map((s) => s.refunded_amount)).toEqual([700, 900]);
    expect((await sandboxRefunds()).filter((r) => r.out_trade_no === b!.out_trade_no)).toHaveLength(1);
    await stop(proc);
  }, 150_000);
});
