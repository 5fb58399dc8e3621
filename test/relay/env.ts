/**
 * Test wiring for the relay: a fresh sandbox (real HTTP server) and a relay on loopback,
 * port 0 everywhere, tokens for a cashier and a manager, and small HTTP/WebSocket helpers.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import Database from 'better-sqlite3';
import pg from 'pg';
import { initSandbox, startSandbox, type InitOptions, type InitResult } from '../../shared/sandbox/index';
import { addTerminal, loadRelayConfig, startRelay, type RelayConfig } from '../../shared/relay/index';
import type { Order, RelayEvent } from '../../shared/contracts/relay-api';
import { createLogger } from '../../shared/relay/log';
import { freshPgDatabase } from '../helpers/stores';


export interface Env {
  dir: string;
  sandboxUrl: string;
  relayUrl: string;
  config: RelayConfig;
  cashier: string;
  manager: string;
  merchant: { mchid: string; appid: string; sub_merchants: { mchid: string; name: string }[] };
  /** What the sandbox's init wrote: the initiator and every participant with its key mode. */
  init: InitResult;
  /**
   * Runs one statement on the relay's database, whichever engine (`?` placeholders; BIGINT
   * values come back as numbers): the tests' seam for moving clocks and reading what was stored.
   */
  sql<T = Record<string, unknown>>(text: string, ...params: unknown[]): Promise<T[]>;
  restartRelay(): Promise<void>;
  stopRelay(): Promise<void>;
  close(): Promise<void>;
}

export interface EnvOptions {
  queryAfterSeconds?: number;
  closeMinAgeSeconds?: number;
  sandboxCloseMinAgeSeconds?: number;
  timeScale?: number;
  heartbeatSeconds?: number;
  relayEnv?: Record<string, string>;
  /** Collect the relay's JSON log lines (at debug level) here. */
  logLines?: string[];
  /** Build the relay's APIv3 client with these (e.g. a short timeout for timeout tests). */
  client?: { timeoutMs?: number; maxRetries?: number };
  /** Sandbox init: key modes of the initiator and of each participant ('none' = no folder). */
  init?: InitOptions;
  /** Sandbox refunds: PROCESSING → final delay (ms) and minimum seconds between two refunds of a sub-order. */
  refundDelayMs?: number;
  refundMinIntervalSeconds?: number;
  /**
   * The relay's store: SQLite (RELAY_DB in the test folder) or PostgreSQL (a fresh database on this
   * test file's throwaway cluster, migrated). Default: RELAY_TEST_ENGINE, else sqlite — the
   * `relay-pg` test project runs the relay's integration tests again with postgresql.
   */
  engine?: 'sqlite' | 'postgresql';
}

export const TEST_ENGINE: 'sqlite' | 'postgresql' = process.env.RELAY_TEST_ENGINE === 'postgresql' ? 'postgresql' : 'sqlite';

export async function startEnv(o: EnvOptions = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-e2e-'));
  const init = await initSandbox(dir, o.init);
  const { merchantDir } = init;
  const sandbox = await startSandbox({ dir, port: 0, timeScale: o.timeScale ?? 600, closeMinAgeSeconds: o.sandboxCloseMinAgeSeconds ?? o.closeMinAgeSeconds ?? 300,
    refundDelayMs: o.refundDelayMs, refundMinIntervalSeconds: o.refundMinIntervalSeconds });
  // The relay binds port 0 and its notify_url is the URL it got (publicUrlFromListen); a restart
  // binds that same port again, as a real relay comes back at its fixed address.
  let config = loadRelayConfig({
    WECHATPAY_CREDENTIALS_DIR: merchantDir,
    WECHATPAY_BASE_URL: sandbox.url,
    RELAY_PUBLIC_URL: 'http://127.0.0.1', // not used: replaced by the listening URL
    RELAY_PORT: '0',
    RELAY_DB: join(dir, 'relay.db'),
    ...((o.engine ?? TEST_ENGINE) === 'postgresql' ? { RELAY_DATABASE_URL: await freshPgDatabase() } : {}),
    RELAY_QUERY_AFTER_SECONDS: String(o.queryAfterSeconds ?? 30),
    RELAY_CLOSE_MIN_AGE_SECONDS: String(o.closeMinAgeSeconds ?? 300),
    RELAY_HEARTBEAT_SECONDS: String(o.heartbeatSeconds ?? 15),
    RELAY_RECONCILE_TICK_MS: '100',
    RELAY_LOG_LEVEL: process.env.RELAY_TEST_LOG ?? 'silent',
    ...o.relayEnv,
  });
  const cashier = await addTerminal(config, 'till-1', 'cashier');
  const manager = await addTerminal(config, 'boss', 'manager');
  const makeLog = () => {
    if (!o.logLines) return createLogger(config.logLevel);
    const sink = new Writable({ write(chunk, _enc, cb) { o.logLines!.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
    return createLogger('debug', sink);
  };
  let relay: { url: string; close(): Promise<void> } | null = await startRelay(config, { log: makeLog(), clientOptions: o.client, publicUrlFromListen: true });
  config = { ...config, port: Number(new URL(relay.url).port), publicUrl: relay.url.replace(/\/$/, '') };
  const merchant = JSON.parse(readFileSync(join(merchantDir, 'merchant.json'), 'utf8'));
  return {
    dir, sandboxUrl: sandbox.url, relayUrl: relay.url, config, cashier, manager, merchant, init,
    sql: (text, ...params) => runSql(config, text, params),
    async stopRelay() {
      await relay?.close();
      relay = null;
    },
    async restartRelay() {
      await relay?.close();
      relay = await startRelay(config, { log: makeLog(), clientOptions: o.client, publicUrlFromListen: true });
    },
    async close() {
      await relay?.close();
      await sandbox.close();
    },
  };
}

/** One statement on the store `config` names (see Env.sql). */
export async function runSql<T>(config: RelayConfig, text: string, params: unknown[]): Promise<T[]> {
  if (config.databaseUrl) {
    let i = 0;
    const client = new pg.Client({
      connectionString: config.databaseUrl,
      types: { getTypeParser: ((oid: number, format?: string) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
    });
    await client.connect();
    try {
      return (await client.query(text.replace(/\?/g, () => `$${++i}`), params)).rows as T[];
    } finally {
      await client.end();
    }
  }
  const db = new Database(config.dbPath);
  try {
    db.pragma('busy_timeout = 5000');
    const st = db.prepare(text);
    return (st.reader ? st.all(...params) : (st.run(...params), [])) as T[];
  } finally {
    db.close();
  }
}

export async function api<T = any>(base: string, method: string, path: string, token: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const send = () => fetch(base + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  let res: Response;
  try {
    res = await send();
  } catch (err) {
    // A pooled keep-alive socket to a relay that was restarted: GETs are safe to send again.
    if (method !== 'GET') throw err;
    res = await send();
  }
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : (undefined as T) };
}

export function orderBody(env: Env, amounts: number[] = [2800, 1500]) {
  return {
    sub_orders: amounts.map((amount, i) => ({ mchid: env.merchant.sub_merchants[i % env.merchant.sub_merchants.length]!.mchid, description: `商品${i + 1}`, amount })),
    description: '测试订单',
  };
}

export async function createOrder(env: Env, amounts?: number[]): Promise<Order> {
  const r = await api<Order>(env.relayUrl, 'POST', '/v1/orders', env.cashier, orderBody(env, amounts));
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function pay(env: Env, order: Order, extra: Record<string, unknown> = {}) {
  return api(env.sandboxUrl, 'POST', '/sandbox/pay', null, { code_url: order.code_url, ...extra });
}

/** A WebSocket on /v1/events collecting every message. */
export class EventsClient {
  readonly messages: RelayEvent[] = [];
  private waiters: { pred: (m: RelayEvent) => boolean; resolve: (m: RelayEvent) => void }[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as RelayEvent;
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    });
  }
  static connect(env: Env, token: string, since?: number): Promise<EventsClient> {
    const url = env.relayUrl.replace('http', 'ws') + '/v1/events' + (since !== undefined ? `?since=${since}` : '');
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
    const c = new EventsClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }
  next(pred: (m: RelayEvent) => boolean, timeoutMs = 10_000): Promise<RelayEvent> {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for an event')), timeoutMs);
      this.waiters.push({ pred, resolve: (m) => { clearTimeout(t); resolve(m); } });
    });
  }
  updates(no: string): Order[] {
    return this.messages.flatMap((m) => (m.type === 'order.updated' && m.order.combine_out_trade_no === no ? [m.order] : []));
  }
  close(): void {
    this.ws.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(everyMs);
  }
}
