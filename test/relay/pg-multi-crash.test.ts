/**
 * Issue 14's crash case: relays A and B as real processes on one PostgreSQL database, terminals
 * on A, a burst of payment notifications to A, and A killed with SIGKILL in the middle of it.
 * Every notification A acknowledged (2xx) is applied (read through B); the rest are delivered
 * again to B, as WeChat Pay retries through the proxy; every terminal of A resumes on B from its
 * last cursor and ends up with every payment as SUCCESS, each seen exactly once.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSandbox, startSandbox } from '../../shared/sandbox/index';
import { addTerminal, loadRelayConfig } from '../../shared/relay/index';
import { migratePg, openPg } from '../../shared/relay/pg/index';
import type { Order, RelayEvent } from '../../shared/contracts/relay-api';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { api, EventsClient, type Env } from './env';
import { startRelayChild } from './child';
import { NotificationForge } from './forge';

const ORDERS = 60;
const KILL_AT = 25;
const TERMINALS = 4;

let cluster: PgCluster;
let sandbox: { url: string; close(): Promise<void> };
let dir: string;
let relayEnv: Record<string, string>;
const children: ChildProcess[] = [];
const sockets: EventsClient[] = [];

beforeAll(async () => {
  cluster = await startPgCluster({ database: 'crash_relay' });
  const pool = openPg(cluster.url, { max: 1 });
  try {
    await migratePg(pool);
  } finally {
    await pool.end();
  }
  dir = mkdtempSync(join(tmpdir(), 'relay-pg-crash-'));
  const { merchantDir } = await initSandbox(dir);
  sandbox = await startSandbox({ dir, port: 0 });
  // WeChat Pay (the sandbox) never notifies here: the test posts every notification itself.
  relayEnv = {
    WECHATPAY_CREDENTIALS_DIR: merchantDir, WECHATPAY_BASE_URL: sandbox.url, RELAY_PUBLIC_URL: 'http://127.0.0.1:9',
    RELAY_PORT: '0', RELAY_DATABASE_URL: cluster.url, RELAY_QUERY_AFTER_SECONDS: '3600', RELAY_LOG_LEVEL: 'warn',
  };
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => {
    c.once('exit', r);
    c.kill('SIGKILL');
  }))));
  await sandbox?.close();
  await cluster?.stop();
});

async function connect(relayUrl: string, token: string, since?: number): Promise<EventsClient> {
  const c = await EventsClient.connect({ relayUrl } as Env, token, since);
  sockets.push(c);
  return c;
}

function lastCursor(c: EventsClient): number {
  let last = -1;
  for (const m of c.messages) {
    if (m.type === 'snapshot') last = Math.max(last, m.cursor);
    if (m.type === 'order.updated' && m.cursor !== undefined) last = Math.max(last, m.cursor);
  }
  return last;
}

const isState = (no: string, state: string) => (m: RelayEvent) => m.type === 'order.updated' && m.order.combine_out_trade_no === no && m.order.state === state;

describe('two relay processes on one PostgreSQL database', () => {
  it('SIGKILL of relay A during a burst: every 2xx is applied, A\'s terminals resume on B and see every payment once', async () => {
    const config = loadRelayConfig(relayEnv);
    const tokens = [await addTerminal(config, 'boss', 'manager')];
    for (let i = 1; i < TERMINALS; i++) tokens.push(await addTerminal(config, `till-${i}`, 'cashier'));
    const a = await startRelayChild(relayEnv, (p) => children.push(p));
    const b = await startRelayChild(relayEnv, (p) => children.push(p));
    const mchids = JSON.parse(readFileSync(join(relayEnv.WECHATPAY_CREDENTIALS_DIR!, 'merchant.json'), 'utf8')).sub_merchants.map((s: { mchid: string }) => s.mchid);

    const orders: Order[] = [];
    for (let i = 0; i < ORDERS; i++) {
      const r = await api<Order>(a.url, 'POST', '/v1/orders', tokens[1 + (i % (TERMINALS - 1))]!, { sub_orders: [{ mchid: mchids[0], description: '面', amount: 100 + i }, { mchid: mchids[1], description: '茶', amount: 200 }] });
      expect(r.status).toBe(201);
      orders.push(r.body);
    }
    const onA = await Promise.all(tokens.map((t) => connect(a.url, t)));
    await Promise.all(onA.map((c) => c.next((m) => m.type === 'snapshot')));
    const closed = onA.map((c) => new Promise((r) => c.ws.once('close', r)));

    const forge = new NotificationForge(dir);
    const notes = orders.map((o) => forge.build(o));
    const acked = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < notes.length) {
        const i = next++;
        if (i === KILL_AT) a.proc.kill('SIGKILL');
        try {
          const res = await fetch(a.url + '/wechatpay/notify', { method: 'POST', headers: notes[i]!.headers, body: notes[i]!.body });
          if (res.status >= 200 && res.status < 300) acked.add(orders[i]!.combine_out_trade_no);
        } catch { /* refused or reset: not acknowledged, WeChat Pay will retry */ }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await new Promise((r) => (a.proc.exitCode !== null || a.proc.signalCode !== null ? r(null) : a.proc.once('exit', r)));
    expect(a.proc.signalCode).toBe('SIGKILL');
    expect(acked.size).toBeGreaterThan(5);
    expect(acked.size).toBeLessThan(ORDERS);
    await Promise.all(closed);

    // Every acknowledged notification is applied: read through B.
    for (const no of acked) {
      const o = await api<Order>(b.url, 'GET', `/v1/orders/${no}`, tokens[0]!);
      expect(o.body.state, no).toBe('SUCCESS');
    }
    // The terminals resume on B from their last cursor (A may have died before pushing some).
    const onB = await Promise.all(onA.map((c, i) => connect(b.url, tokens[i]!, lastCursor(c))));
    // WeChat Pay delivers the unacknowledged ones again (same id), now to B.
    for (const [i, o] of orders.entries()) {
      if (acked.has(o.combine_out_trade_no)) continue;
      const n = forge.build(o, { id: JSON.parse(notes[i]!.body).id });
      const res = await fetch(b.url + '/wechatpay/notify', { method: 'POST', headers: n.headers, body: n.body });
      expect(res.status, o.combine_out_trade_no).toBeGreaterThanOrEqual(200);
      expect(res.status, o.combine_out_trade_no).toBeLessThan(300);
    }
    // A later change marks the point by which everything before it has been delivered.
    const marker = await api<Order>(b.url, 'POST', '/v1/orders', tokens[1]!, { sub_orders: [{ mchid: mchids[0], description: '标记', amount: 99 }, { mchid: mchids[1], description: '标记', amount: 99 }] });
    expect(marker.status).toBe(201);
    await Promise.all(onB.map((c) => c.next(isState(marker.body.combine_out_trade_no, 'NOTPAY'), 20_000)));

    const all = await api<{ orders: Order[] }>(b.url, 'GET', '/v1/orders?limit=1000', tokens[0]!);
    expect(all.body.orders.filter((o) => o.state === 'SUCCESS')).toHaveLength(ORDERS);
    for (const [t, before] of onA.entries()) {
      const after = onB[t]!;
      // A resume, never a fresh snapshot: the cursor A handed out means the same on B.
      expect(after.messages.filter((m) => m.type === 'snapshot'), `terminal ${t}`).toEqual([]);
      for (const o of orders) {
        const no = o.combine_out_trade_no;
        const seen = [...before.updates(no), ...after.updates(no)];
        expect(seen.at(-1)?.state, `terminal ${t}, order ${no}`).toBe('SUCCESS');
        expect(seen.filter((x) => x.state === 'SUCCESS'), `terminal ${t}, order ${no}`).toHaveLength(1);
      }
    }

    // B shuts down cleanly on SIGTERM.
    const exited = new Promise<number | null>((r) => b.proc.once('exit', (code) => r(code)));
    b.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 180_000);
});
