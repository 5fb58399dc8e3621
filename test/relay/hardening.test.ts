/**
 * Issue 13 (relay): text that cannot be shown honestly, impossible dates, auth scheme case,
 * non-JSON posts, owner-only files, header/body deadlines, the connection cap, and bounded
 * `/v1/events` first messages with a socket limit per terminal.
 */
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RelayEvent } from '../../shared/contracts/relay-api';
import { Authenticator, createTerminal } from '../../shared/relay/auth';
import { openDb, type Db } from '../../shared/relay/db';
import { CLOSE_TOO_MANY, EventHub } from '../../shared/relay/events';
import { newCombineOutTradeNo, subOutTradeNo } from '../../shared/relay/ids';
import { createLogger } from '../../shared/relay/log';
import { OrderStore } from '../../shared/relay/store';
import { openSqliteStore, type SqliteStore } from '../../shared/relay/sqlite/index';
import { textProblem } from '../../shared/relay/validate';
import { api, orderBody, startEnv, type Env } from './env';

const mode = (p: string) => statSync(p).mode & 0o777;

describe('text, dates, auth scheme, content type', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600 });
  });
  afterAll(async () => env?.close());

  it.each([
    ['sub_orders[1].description', 'a\u202eb', /bidirectional/],
    ['sub_orders[1].description', 'a\ud800b', /lone surrogate/],
    ['sub_orders[0].description', 'line\u2028break', /separator/],
    ['sub_orders[1].attach', 'x\u200by', /zero-width/],
    ['sub_orders[0].attach', 'bell\u0007', /control/],
    ['description', 'next\u0085line', /control/],
    ['description', '\ufeffbom', /zero-width/],
  ])('refuses %s = %j with 400 naming the field', async (field, value, why) => {
    const body = orderBody(env) as any;
    const m = /^sub_orders\[(\d)\]\.(\w+)$/.exec(field);
    if (m) body.sub_orders[Number(m[1])][m[2]!] = value;
    else body[field] = value;
    // JSON.stringify writes a lone surrogate as \ud800: it reaches the relay as one.
    const r = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, body);
    expect(r.status).toBe(400);
    expect(r.body.field).toBe(field);
    expect(r.body.message).toMatch(why);
    expect(r.body.message.startsWith(field + ':')).toBe(true);
  });

  it('keeps ordinary Chinese text, punctuation and spaces', () => {
    for (const ok of ['牛肉面（大）', 'Café au lait, 2× — 12.5%', '茶 · 冰']) expect(textProblem(ok)).toBeNull();
  });

  it('refuses impossible dates on takings and order lists', async () => {
    for (const path of ['/v1/takings?date=2026-02-30', '/v1/orders?date=2026-02-30', '/v1/orders?date=2026-13-01', '/v1/takings?date=26-01-01']) {
      const r = await api(env.relayUrl, 'GET', path, env.cashier);
      expect(r.status, path).toBe(400);
      expect(r.body.field).toBe('date');
    }
    expect((await api(env.relayUrl, 'GET', '/v1/takings?date=2028-02-29', env.cashier)).status).toBe(200);
  });

  it('takes the Bearer scheme in any case', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const r = await api(env.relayUrl, 'GET', '/v1/me', null, undefined, { Authorization: `${scheme} ${env.cashier}` });
      expect(r.status, scheme).toBe(200);
    }
    expect((await api(env.relayUrl, 'GET', '/v1/me', null, undefined, { Authorization: `Basic ${env.cashier}` })).status).toBe(401);
  });

  it('refuses a non-JSON Content-Type on POST routes with 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await fetch(env.relayUrl + '/v1/orders', {
        method: 'POST', headers: { Authorization: `Bearer ${env.cashier}`, 'Content-Type': type }, body: JSON.stringify(orderBody(env)),
      });
      expect(r.status, type).toBe(415);
      expect((await r.json()).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
    const bill = await fetch(env.relayUrl + '/v1/bills/trade', {
      method: 'POST', headers: { Authorization: `Bearer ${env.manager}`, 'Content-Type': 'text/plain' }, body: '{"bill_date":"2026-01-01"}',
    });
    expect(bill.status).toBe(415);
    const ok = await api(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env), { 'Content-Type': 'application/json; charset=utf-8' });
    expect(ok.status).toBe(201);
  });
});

describe('database files', () => {
  it('are owner-only whatever the umask: folders the relay creates 0700, relay.db and its -wal/-shm 0600', () => {
    const base = mkdtempSync(join(tmpdir(), 'relay-modes-'));
    const path = join(base, 'new', 'data', 'relay.db');
    const old = process.umask(0o000);
    let db: Db;
    try {
      db = openDb(path);
      db.exec('CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);');
    } finally {
      process.umask(old);
    }
    expect(mode(join(base, 'new'))).toBe(0o700);
    expect(mode(join(base, 'new', 'data'))).toBe(0o700);
    for (const f of [path, `${path}-wal`, `${path}-shm`]) expect(mode(f), f).toBe(0o600);
    db.close();
    // An existing world-readable database is tightened on open.
    const loose = join(base, 'loose.db');
    writeFileSync(loose, '', { mode: 0o644 });
    openDb(loose).close();
    expect(mode(loose)).toBe(0o600);
  });
});

/** A raw TCP client: what it received and when it closed. */
function raw(url: string): Promise<{ sock: Socket; data: () => string; closed: Promise<number> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let got = '';
    const t0 = Date.now();
    const sock = connect(Number(u.port), u.hostname, () => resolve({ sock, data: () => got, closed }));
    const closed = new Promise<number>((r) => sock.on('close', () => r(Date.now() - t0)));
    sock.on('data', (d) => { got += d; });
    sock.on('error', () => {});
    sock.once('error', reject);
  });
}

describe('deadlines and the connection cap', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, relayEnv: { RELAY_BODY_TIMEOUT_MS: '600', RELAY_HEADERS_TIMEOUT_MS: '800', RELAY_MAX_CONNECTIONS: '6' } });
  });
  afterAll(async () => env?.close());

  it('cuts off a trickled notification body within the deadline (408, connection closed)', async () => {
    const c = await raw(env.relayUrl);
    c.sock.write('POST /wechatpay/notify HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    const trickle = setInterval(() => c.sock.writable && c.sock.write('a'), 100);
    const ms = await c.closed;
    clearInterval(trickle);
    expect(c.data()).toMatch(/^HTTP\/1\.1 408 /);
    expect(c.data()).toContain('"code":"FAIL"');
    expect(ms).toBeGreaterThanOrEqual(500);
    expect(ms).toBeLessThan(3000);
  });

  it('closes a connection that never sends its headers', async () => {
    const c = await raw(env.relayUrl);
    c.sock.write('GET /healthz HTTP/1.1\r\nHost: re');
    const ms = await c.closed;
    expect(ms).toBeLessThan(3000);
  });

  it('over the cap, new connections are refused while the open ones keep working', async () => {
    // One keep-alive connection in use before the cap is reached.
    const first = await raw(env.relayUrl);
    const ask = (c: { sock: Socket; data: () => string }) => new Promise<string>((resolve) => {
      const before = c.data().length;
      c.sock.write('GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n');
      const check = () => (c.data().length > before && c.data().endsWith('}}') ? resolve(c.data().slice(before)) : setTimeout(check, 10));
      check();
    });
    expect(await ask(first)).toContain('200 OK');
    // Fill the cap with connections that keep asking (so the header timeout does not end them).
    const fillers = await Promise.all(Array.from({ length: 5 }, () => raw(env.relayUrl)));
    for (const f of fillers) await ask(f);
    const refused = await raw(env.relayUrl);
    const ms = await refused.closed;
    expect(refused.data()).toBe('');
    expect(ms).toBeLessThan(1000);
    // The open ones still answer.
    expect(await ask(first)).toContain('200 OK');
    expect(await ask(fillers[4]!)).toContain('200 OK');
    for (const c of [first, ...fillers]) c.sock.destroy();
    await Promise.all([first, ...fillers].map((c) => c.closed));
    // Room again.
    const again = await raw(env.relayUrl);
    expect(await ask(again)).toContain('200 OK');
    again.sock.destroy();
  });
});

describe('/v1/events first messages and sockets per terminal', () => {
  let dir: string;
  let db: Db;
  let store: OrderStore;
  let sstore: SqliteStore;
  let hub: EventHub;
  let http: Server;
  let url: string;
  let token: string;

  const addOrder = (terminal = 'till-1') => {
    const now = Date.now();
    const no = newCombineOutTradeNo(now);
    store.insert({
      row: { combine_out_trade_no: no, state: 'NOTPAY', total_amount: 300, description: null, created_at: new Date(now).toISOString(), created_ms: now,
        expires_at: new Date(now + 600_000).toISOString(), expires_ms: now + 600_000, updated_ms: now, terminal, creation: 'PENDING',
        idempotency_key: null, request_hash: 'h', request_json: '{}', watch: 1, next_check_ms: now },
      subs: [0, 1].map((idx) => ({ out_trade_no: subOutTradeNo(no, idx), combine_out_trade_no: no, idx, mchid: '1900000101', description: 'd', amount: 100 + idx * 50, attach: null })),
    });
    store.markCreated(no, 'weixin://wxpay/bizpayurl?pr=x');
    return no;
  };
  let managerToken: string;

  const open = (since?: number, as = token) => new Promise<{ ws: WebSocket; msgs: RelayEvent[]; first: Promise<RelayEvent>; closed: Promise<number> }>((resolve, reject) => {
    const ws = new WebSocket(url + '/v1/events' + (since !== undefined ? `?since=${since}` : ''), { headers: { Authorization: `bearer ${as}` } });
    const msgs: RelayEvent[] = [];
    let gotFirst: (m: RelayEvent) => void;
    const first = new Promise<RelayEvent>((r) => { gotFirst = r; });
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as RelayEvent;
      msgs.push(m);
      if (msgs.length === 1) gotFirst(m);
    });
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.once('open', () => resolve({ ws, msgs, first, closed }));
    ws.once('error', reject);
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'relay-hub-'));
    sstore = openSqliteStore(join(dir, 'relay.db'), { checkpoints: false });
    db = sstore.db;
    store = sstore.core;
    token = await createTerminal(sstore.terminals, 'till-1', 'cashier');
    managerToken = await createTerminal(sstore.terminals, 'boss', 'manager');
    hub = new EventHub(sstore, new Authenticator(sstore.terminals), createLogger('silent'), { heartbeatMs: 60_000, perTerminal: 2, snapshotOpen: 5, snapshotRecent: 3, replayMax: 4 });
    http = createServer((_req, res) => res.end());
    http.on('upgrade', (req, socket, head) => hub.handleUpgrade(req, socket, head));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    url = `ws://127.0.0.1:${(http.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    hub?.close();
    await new Promise((r) => http?.close(r));
    await sstore?.close();
  });

  it('bounds the snapshot: open orders up to the limit, newest first', async () => {
    const made = Array.from({ length: 9 }, addOrder);
    const c = await open();
    const snap = await c.first;
    if (snap.type !== 'snapshot') throw new Error(snap.type);
    expect(snap.resync).toBeUndefined();
    expect(snap.orders.map((o) => o.combine_out_trade_no)).toEqual(made.slice(-5).reverse());
    expect(snap.cursor).toBe(store.cursor());
    c.ws.close();
    await c.closed;
  });

  it("gives a cashier its own terminal's orders and a manager every terminal's", async () => {
    const other = addOrder('till-2');
    const mine = addOrder('till-1');
    const cashier = await open();
    const cs = await cashier.first;
    const manager = await open(undefined, managerToken);
    const ms = await manager.first;
    if (cs.type !== 'snapshot' || ms.type !== 'snapshot') throw new Error('no snapshot');
    expect(cs.orders.map((o) => o.combine_out_trade_no)).toContain(mine);
    expect(cs.orders.every((o) => o.terminal === 'till-1')).toBe(true);
    expect(ms.orders.map((o) => o.combine_out_trade_no)).toEqual(expect.arrayContaining([mine, other]));
    expect(cs.orders.map((o) => o.combine_out_trade_no)).not.toContain(other);
    // Live changes still go to every socket.
    const third = addOrder('till-3');
    for (const c of [cashier, manager]) {
      while (!c.msgs.some((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === third)) await new Promise((r) => setTimeout(r, 5));
    }
    cashier.ws.close();
    manager.ws.close();
    await Promise.all([cashier.closed, manager.closed]);
  });

  it('replays a short absence; a long one gets a snapshot marked resync', async () => {
    const from = store.cursor();
    const a = addOrder();
    const b = addOrder();
    const short = await open(from);
    const replay = [await short.first];
    while (short.msgs.length < 2) await new Promise((r) => setImmediate(r));
    replay.push(short.msgs[1]!);
    expect(replay.map((m) => m.type === 'order.updated' && m.order.combine_out_trade_no)).toEqual([a, b]);
    short.ws.close();
    await short.closed;
    // More than replayMax (4) orders changed since cursor 1: start again from a snapshot.
    const long = await open(1);
    const m = await long.first;
    expect(m.type).toBe('snapshot');
    expect(m.type === 'snapshot' && m.resync).toBe(true);
    long.ws.close();
    await long.closed;
    // A cursor from the future (another database): the same.
    const future = await open(store.cursor() + 1000);
    const f = await future.first;
    expect(f.type === 'snapshot' && f.resync).toBe(true);
    future.ws.close();
    await future.closed;
  });

  it('keeps at most perTerminal sockets per terminal: the oldest is closed with 4008', async () => {
    const one = await open();
    await one.first;
    const two = await open();
    await two.first;
    const three = await open();
    await three.first;
    expect(await one.closed).toBe(CLOSE_TOO_MANY);
    expect(two.ws.readyState).toBe(WebSocket.OPEN);
    // The survivors still get live changes.
    const no = addOrder();
    const seen = async (c: { msgs: RelayEvent[] }) => {
      while (!c.msgs.some((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === no)) await new Promise((r) => setTimeout(r, 5));
    };
    await Promise.all([seen(two), seen(three)]);
    expect(hub.size).toBe(2);
    two.ws.close();
    three.ws.close();
  });
});
