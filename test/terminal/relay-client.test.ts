/** The terminal's relay client against the real relay (embedded stack): errors, reconnect, catch-up. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../../shared/contracts/relay-api';
import type { ConnectionState } from '../../shared/contracts/terminal-api';
import { RelayClient, RelayEvents } from '../../shared/terminal/relay-client';
import { TerminalError } from '../../shared/terminal/errors';
import { startStack, type Stack } from '../helpers/stack';
import { until } from './fixtures';

let stack: Stack;
let client: RelayClient;
let mchids: string[];
beforeAll(async () => {
  stack = await startStack();
  client = new RelayClient({ baseUrl: stack.relayUrl, token: stack.cashierToken, managerToken: stack.managerToken });
  mchids = (await client.merchants()).sub_merchants.map((m) => m.mchid);
});
afterAll(() => stack?.close());


function record(ev: RelayEvents) {
  const msgs: RelayEvent[] = [];
  const states: ConnectionState[] = [];
  ev.on('event', (e) => msgs.push(e));
  ev.on('state', (s) => states.push(s));
  return { msgs, states };
}

const newOrder = (key: string) => client.createOrder({ sub_orders: [{ mchid: mchids[0]!, description: '测试商品', amount: 101 }, { mchid: mchids[1]!, description: '奶茶', amount: 200 }] }, key);
const pay = (code_url: string) => fetch(`${stack.sandboxUrl}/sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code_url }) });

describe('relay client', () => {
  it('maps relay errors and transport failures to TerminalErrors', async () => {
    const bad = new RelayClient({ baseUrl: stack.relayUrl, token: 'wrong-token' });
    await expect(bad.me()).rejects.toMatchObject({ status: 401 });
    await expect(client.getOrder('NOSUCHORDER123')).rejects.toMatchObject({ status: 404 });
    const cashierOnly = new RelayClient({ baseUrl: stack.relayUrl, token: stack.cashierToken });
    await expect(cashierOnly.alerts()).rejects.toMatchObject({ status: 403 });
    const down = new RelayClient({ baseUrl: 'http://127.0.0.1:1', token: 't' });
    const err = await down.me().catch((e) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.code).toBe('RELAY_UNREACHABLE');
    await expect(new RelayClient({ baseUrl: '', token: 't' }).me()).rejects.toMatchObject({ code: 'UNCONFIGURED', field: 'relay_url' });
  });

  it('a refused token shows as unauthorized', async () => {
    const ev = new RelayEvents({ baseUrl: stack.relayUrl, token: 'wrong-token' });
    const { states } = record(ev);
    ev.start();
    await until('unauthorized', () => states.includes('unauthorized'));
    ev.close();
  });

  it('reconnects after the link drops and keeps receiving updates', async () => {
    const ev = client.events({ minBackoffMs: 20, maxBackoffMs: 100 });
    const { msgs, states } = record(ev);
    ev.start();
    await until('snapshot', () => msgs.some((m) => m.type === 'snapshot'));
    ev.drop();
    await until('offline then online', () => states.lastIndexOf('online') > states.indexOf('offline') && states.includes('offline'));
    const o = await newOrder('reconnect-key-1');
    await until('update after reconnect', () => msgs.some((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === o.combine_out_trade_no));
    ev.close();
  });

  it('catches up on what changed while offline (?since=cursor)', async () => {
    const first = client.events();
    const a = record(first);
    first.start();
    await until('snapshot', () => a.msgs.some((m) => m.type === 'snapshot'));
    await new Promise((r) => setTimeout(r, 100));
    const cursor = first.lastCursor!;
    expect(typeof cursor).toBe('number');
    first.close(); // the terminal goes offline

    const o = await newOrder('catchup-key-1');
    expect((await pay(o.code_url!)).status).toBe(200);
    for (let i = 0; i < 200 && (await client.getOrder(o.combine_out_trade_no)).state !== 'SUCCESS'; i++) await new Promise((r) => setTimeout(r, 50));

    const back = new RelayEvents({ baseUrl: stack.relayUrl, token: stack.cashierToken, since: cursor });
    const b = record(back);
    back.start();
    const updates = () => b.msgs.filter((m): m is Extract<RelayEvent, { type: 'order.updated' }> => m.type === 'order.updated' && m.order.combine_out_trade_no === o.combine_out_trade_no);
    await until('missed SUCCESS replayed', () => updates().some((m) => m.order.state === 'SUCCESS'));
    expect(b.msgs.some((m) => m.type === 'snapshot')).toBe(false);
    expect(back.lastCursor!).toBeGreaterThan(cursor);
    back.close();
  });
});

describe('relay event stream watchdog', () => {
  it('a relay that goes silent (no messages, no pings) is dropped and reconnected', async () => {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    let connections = 0;
    wss.on('connection', () => { connections++; }); // accepts, then never says anything
    const port = (wss.address() as { port: number }).port;
    const ev = new RelayEvents({ baseUrl: `http://127.0.0.1:${port}`, token: 't', heartbeatTimeoutMs: 150, minBackoffMs: 20, maxBackoffMs: 40 });
    const { states } = record(ev);
    ev.start();
    await until('second connection', () => connections >= 2, 5000);
    expect(states.slice(0, 3)).toEqual(['online', 'offline', 'connecting']);
    ev.close();
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
  });
});
