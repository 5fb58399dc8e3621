/**
 * The SQLite store: the embedded default (one relay process owns `RELAY_DB`). WAL checkpoints run
 * off the event loop (checkpoint.ts).
 */
import { startCheckpointer } from '../checkpoint';
import { openDb, type Db } from '../db';
import { OrderStore } from '../store';
import type { BillsRepo } from '../repo-bills';
import type { CounterRepo } from '../repo-counter';
import type { RefundsRepo } from '../repo-refunds';
import type { RelayStore, StoreHealth } from '../repo-types';
import { SqliteBills } from './bills';
import { SqliteCounter } from './counter';
import { SqliteRefunds } from './refunds';
import { SqliteAlerts, SqliteAudit, SqliteFeed, SqliteNotifications, SqliteOrders, SqliteTerminals } from './core';

export interface SqliteStoreOptions {
  synchronous?: 'NORMAL' | 'FULL';
  /** Checkpoint failures (logged by the relay). */
  onCheckpointError?: (message: string) => void;
  /** Without the checkpoint worker (tools that open the file briefly). */
  checkpoints?: boolean;
}

export class SqliteStore implements RelayStore {
  readonly engine = 'sqlite' as const;
  readonly core: OrderStore;
  readonly orders: SqliteOrders;
  readonly notifications: SqliteNotifications;
  readonly terminals: SqliteTerminals;
  readonly alerts: SqliteAlerts;
  readonly audit: SqliteAudit;
  readonly feed: SqliteFeed;
  readonly refunds: RefundsRepo;
  readonly counter: CounterRepo;
  readonly bills: BillsRepo;
  private closed = false;

  constructor(readonly db: Db, private readonly checkpointer: { stop(): Promise<void> } | null) {
    this.core = new OrderStore(db);
    this.orders = new SqliteOrders(db, this.core);
    this.notifications = new SqliteNotifications(db, this.core);
    this.terminals = new SqliteTerminals(db);
    this.alerts = new SqliteAlerts(this.core);
    this.audit = new SqliteAudit(this.core);
    this.feed = new SqliteFeed(this.core);
    this.refunds = new SqliteRefunds(db, this.core);
    this.counter = new SqliteCounter(db, this.core);
    this.bills = new SqliteBills(db, this.core);
  }

  async health(): Promise<StoreHealth> {
    const t0 = performance.now();
    try {
      this.db.prepare('SELECT 1').get();
      return { ok: true, engine: 'sqlite', latency_ms: Math.round((performance.now() - t0) * 100) / 100 };
    } catch (err) {
      return { ok: false, engine: 'sqlite', error: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.checkpointer?.stop();
    this.db.close();
  }
}

export function openSqliteStore(path: string, o: SqliteStoreOptions = {}): SqliteStore {
  const db = openDb(path, { synchronous: o.synchronous });
  const checkpointer = o.checkpoints === false ? null : startCheckpointer(path, 500, o.onCheckpointError ?? (() => {}));
  return new SqliteStore(db, checkpointer);
}
