/**
 * The PostgreSQL store: one or more relay processes on one database (RELAY_DATABASE_URL). Serving
 * never migrates by itself: a database at another schema version is refused (`relay migrate`).
 */
import type { RelayStore, StoreHealth } from '../repo-types';
import { PgCore } from './core';
import { PgFeed } from './feed';
import { checkPgSchema } from './migrate';
import { PgNotifications } from './notifications';
import { openPg, type PgPool } from './open';
import { PgOrders } from './orders';
import { PgAlerts, PgAudit, PgTerminals } from './terminals';
import { PgRefunds } from './refunds';
import { PgCounter } from './counter';
import { PgBills } from './bills';
import { PgSockets } from './sockets';

/** Longest wait of a health check before it reports the database as not answering. */
const HEALTH_TIMEOUT_MS = 2000;

export interface OpenPgStoreOptions {
  /** Connections in the pool (default 10); the feed's LISTEN connection comes on top. */
  poolMax?: number;
  /** Shown in pg_stat_activity; the LISTEN connection gets `<name>-feed`. */
  applicationName?: string;
  /** The feed's safety poll (default 1000 ms); tests lengthen it to see the other wake-ups alone. */
  feedPollMs?: number;
}

export class PgStore implements RelayStore {
  readonly engine = 'postgresql' as const;
  readonly core: PgCore;
  readonly orders: PgOrders;
  readonly notifications: PgNotifications;
  readonly terminals: PgTerminals;
  readonly alerts: PgAlerts;
  readonly audit: PgAudit;
  readonly feed: PgFeed;
  readonly refunds: PgRefunds;
  readonly counter: PgCounter;
  readonly bills: PgBills;
  /** RELAY_EVENTS_PER_TERMINAL over every relay (sockets.ts). */
  readonly sockets: PgSockets;
  private closed: Promise<void> | undefined;

  constructor(readonly pool: PgPool, url: string, applicationName: string, feedPollMs?: number) {
    this.core = new PgCore(pool);
    this.orders = new PgOrders(this.core);
    this.notifications = new PgNotifications(this.core);
    this.terminals = new PgTerminals(this.core);
    this.alerts = new PgAlerts(this.core);
    this.audit = new PgAudit(this.core);
    this.feed = new PgFeed(this.core, { connectionString: url, applicationName: `${applicationName}-feed`, pollMs: feedPollMs });
    this.refunds = new PgRefunds(this.core);
    this.counter = new PgCounter(this.core);
    this.bills = new PgBills(this.core);
    this.sockets = new PgSockets(this.core, url);
  }

  async health(): Promise<StoreHealth> {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pool.query('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { code: 'HEALTH_TIMEOUT' })), HEALTH_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      return { ok: false, engine: 'postgresql', error: healthError(err) };
    } finally {
      clearTimeout(timer);
    }
    const latency_ms = Math.round((performance.now() - t0) * 100) / 100;
    if (!this.feed.listening()) return { ok: false, engine: 'postgresql', error: 'the change feed is not listening (reconnecting to the database)', latency_ms };
    return { ok: true, engine: 'postgresql', latency_ms };
  }

  close(): Promise<void> {
    return (this.closed ??= (async () => {
      await this.feed.close();
      await this.sockets.close();
      await this.pool.end();
    })());
  }
}

/** What went wrong, from the error's code only: driver messages may name the host or the user. */
function healthError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'HEALTH_TIMEOUT') return `the database did not answer within ${HEALTH_TIMEOUT_MS / 1000} s`;
  if (code === 'ECONNREFUSED') return 'the database refused the connection';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the database host was not found';
  if (code === '57P01' || code === '57P02' || code === '57P03') return 'the database is shutting down or starting up';
  if (typeof code === 'string' && /^[0-9A-Z]{5}$|^E[A-Z]+$/.test(code)) return `database error ${code}`;
  return 'the database is unreachable';
}

export async function openPgStore(url: string, opts: OpenPgStoreOptions = {}): Promise<PgStore> {
  const applicationName = opts.applicationName ?? 'relay';
  const pool = openPg(url, { max: opts.poolMax, applicationName });
  let store: PgStore | undefined;
  try {
    await checkPgSchema(pool);
    store = new PgStore(pool, url, applicationName, opts.feedPollMs);
    await store.feed.start();
    await store.sockets.start();
    return store;
  } catch (err) {
    // Whatever started (the feed's or the sockets' listening connection) stops with the pool.
    await (store ? store.close() : pool.end()).catch(() => {});
    throw err;
  }
}
