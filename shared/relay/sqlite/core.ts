/**
 * The core repositories on SQLite: thin async faces over the synchronous OrderStore (store.ts),
 * which keeps the statements. One relay process owns the file, so the change cursor lives in
 * process memory and changes reach listeners synchronously after each commit.
 */
import type { Alert, Order } from '../../contracts/relay-api';
import type { Db } from '../db';
import type { OrderStore } from '../store';
import type {
  AlertsRepo, AuditRepo, Change, ChangeFeed, ChangeListener, ListFilter, NewOrder, NotificationsRepo, OrderRow, OrdersRepo,
  PaymentApplyResult, PaymentNotification, SnapshotBounds, SubOrderRow, TerminalRecord, TerminalsRepo, Transition,
} from '../repo-types';

const isUnique = (err: unknown): boolean => (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' || (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';

export class SqliteOrders implements OrdersRepo {
  constructor(private readonly db: Db, private readonly core: OrderStore) {}

  async row(no: string): Promise<OrderRow | undefined> { return this.core.row(no); }
  async subRows(no: string): Promise<SubOrderRow[]> { return this.core.subRows(no); }
  async subByNo(outTradeNo: string): Promise<SubOrderRow | undefined> { return this.core.subByNo(outTradeNo); }
  async get(no: string): Promise<Order | undefined> { return this.core.get(no); }
  async toOrders(rows: OrderRow[]): Promise<Order[]> { return this.core.toOrders(rows); }
  async byIdempotencyKey(terminal: string, key: string): Promise<OrderRow | undefined> { return this.core.byIdempotencyKey(terminal, key); }

  async insert(o: NewOrder): Promise<boolean> {
    try {
      this.core.insert(o);
      return true;
    } catch (err) {
      if (isUnique(err) && o.row.idempotency_key !== null && this.core.byIdempotencyKey(o.row.terminal, o.row.idempotency_key)) return false;
      throw err;
    }
  }

  async markCreated(no: string, codeUrl: string, now?: number): Promise<Order | null> { return this.core.markCreated(no, codeUrl, now)?.order ?? null; }
  async markFailed(no: string, code: string, message: string, watch: boolean, now?: number): Promise<Order | null> {
    return this.core.markFailed(no, code, message, watch, now)?.order ?? null;
  }
  async transition(no: string, t: Transition, now?: number): Promise<boolean> { return this.core.transition(no, t, now); }
  async schedule(no: string, atMs: number): Promise<void> { this.core.schedule(no, atMs); }
  async unwatch(no: string): Promise<void> { this.core.unwatch(no); }
  async unwatchFinal(): Promise<void> { this.core.unwatchFinal(); }
  async claimDue(now: number, limit: number, leaseMs: number): Promise<string[]> { return this.core.claimDue(now, limit, leaseMs); }

  async resumePending(): Promise<void> {
    // One process owns the file: a create left PENDING was cut short by a crash; re-send it now.
    this.db.prepare("UPDATE orders SET next_check_ms = 0 WHERE watch = 1 AND creation = 'PENDING'").run();
  }

  async list(f: ListFilter): Promise<Order[]> { return this.core.list(f); }
  async takings(dayStartMs: number): Promise<{ mchid: string; amount: number; count: number }[]> { return this.core.takings(dayStartMs); }
}

/** A notification waiting for its batch's transaction. */
interface Pending {
  n: PaymentNotification;
  resolve: (r: PaymentApplyResult) => void;
  reject: (err: unknown) => void;
  result?: PaymentApplyResult;
  change?: Change | null;
  error?: unknown;
}

/** Thrown inside a savepoint to roll it back with an answer. */
class Refused extends Error {
  constructor(readonly result: PaymentApplyResult) {
    super(result.kind);
  }
}

/**
 * Payment notifications with group commit: the notifications that arrive within one turn of the
 * event loop are applied in ONE transaction, each inside its own savepoint (a refused one rolls
 * back alone), and each is answered only after the common COMMIT. A commit writes every page it
 * dirtied to the WAL: pages shared by the batch (change cursor, paid and transaction-id index
 * leaves, the WAL header) are written once per batch instead of once per notification.
 * Exactly-once is unchanged: the id (UNIQUE) and the state change are in the same transaction, and
 * a duplicate within a batch sees the first one's id.
 */
export class SqliteNotifications implements NotificationsRepo {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly insertId;
  private readonly one: (p: Pending) => void;
  private readonly batch: (b: Pending[]) => void;

  constructor(private readonly db: Db, private readonly core: OrderStore) {
    this.insertId = db.prepare('INSERT OR IGNORE INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES (?, ?, ?, ?, ?)');
    // Optimistic: record the id (UNIQUE: a duplicate stops here), then one UPDATE that changes the
    // order only when it is non-final AND its stored sub-orders equal the notification's (sub_key).
    // Only when that changed nothing are the sub-orders read, to tell "already final" (keep the id)
    // from a mismatch or an unknown order (roll back: the id is not recorded, nothing changed).
    const apply = db.transaction((p: Pending) => {
      const { n } = p;
      const now = Date.now();
      if (this.insertId.run(n.id, n.no, n.eventType, new Date(now).toISOString(), 0).changes === 0) {
        p.result = { kind: 'duplicate' };
        return;
      }
      const change = n.key === null ? null : this.core.applyMatchingInTx(n.no, n.key, n.transition, now);
      if (change) {
        p.change = change;
        p.result = { kind: 'applied', changed: true, state: n.transition.state };
        return;
      }
      const row = this.core.row(n.no);
      const subs = this.core.subRows(n.no);
      if (!row || subs.length === 0) throw new Refused({ kind: 'unknown' });
      const refusal = n.check(row, subs);
      if (refusal) throw new Refused({ kind: 'mismatch', ...refusal });
      p.result = { kind: 'applied', changed: false, state: n.transition.state };
    });
    this.one = (p) => {
      try {
        apply(p);
      } catch (err) {
        if (err instanceof Refused) p.result = err.result;
        else throw err;
      }
    };
    // DEFERRED is enough: the first statement is a write, so the write lock (with busy_timeout) is
    // taken before anything is read.
    this.batch = db.transaction((b: Pending[]) => {
      for (const p of b) {
        // An error SQLite answers by rolling back the whole transaction (disk full, I/O): the rest
        // must not run in autocommit; the COMMIT then fails and all are answered 5xx.
        if (!db.inTransaction) {
          p.error = new Error('the notifications transaction was rolled back');
          continue;
        }
        try {
          this.one(p);
        } catch (err) {
          p.error = err; // that savepoint was rolled back; the others stand
        }
      }
    });
  }

  applyPayment(n: PaymentNotification): Promise<PaymentApplyResult> {
    return new Promise<PaymentApplyResult>((resolve, reject) => {
      this.queue.push({ n, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const b = this.queue;
    this.queue = [];
    this.scheduled = false;
    try {
      this.batch(b);
    } catch (err) {
      // The COMMIT failed: nothing of the batch is stored; each is answered 5xx.
      for (const p of b) p.reject(err);
      return;
    }
    for (const p of b) {
      if ('error' in p) p.reject(p.error);
      else {
        if (p.change) this.core.emitChange(p.change);
        p.resolve(p.result!);
      }
    }
  }
}

export class SqliteTerminals implements TerminalsRepo {
  private readonly byHash;
  constructor(private readonly db: Db) {
    this.byHash = db.prepare('SELECT name, role FROM terminals WHERE token_hash = ? AND revoked_at IS NULL');
  }

  async create(name: string, role: 'cashier' | 'manager', tokenHash: string, at: string): Promise<boolean> {
    try {
      this.db.prepare('INSERT INTO terminals (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)').run(name, role, tokenHash, at);
      return true;
    } catch (err) {
      if (isUnique(err)) return false;
      throw err;
    }
  }

  async byTokenHash(tokenHash: string): Promise<TerminalRecord | null> {
    return (this.byHash.get(tokenHash) as TerminalRecord | undefined) ?? null;
  }
}

export class SqliteAlerts implements AlertsRepo {
  constructor(private readonly core: OrderStore) {}
  async add(kind: string, no: string | null, message: string, dedupeKey: string | null, now?: number): Promise<Alert | null> {
    return this.core.addAlert(kind, no, message, dedupeKey, now);
  }
  async list(limit: number): Promise<Alert[]> { return this.core.alerts(limit); }
}

export class SqliteAudit implements AuditRepo {
  constructor(private readonly core: OrderStore) {}
  async add(terminal: string, action: string, target: string | null, detail: unknown): Promise<void> {
    this.core.audit(terminal, action, target, detail);
  }
}

export class SqliteFeed implements ChangeFeed {
  constructor(private readonly core: OrderStore) {}
  onChange(l: ChangeListener): void { this.core.onChange(l); }
  cursor(): number { return this.core.cursor(); }
  /** Every commit was delivered synchronously after it: nothing to catch up. */
  async catchUp(): Promise<void> {}
  async changedRowsSince(since: number, max: number): Promise<OrderRow[] | null> { return this.core.changedRowsSince(since, max); }
  async snapshotRows(o: SnapshotBounds, now?: number): Promise<OrderRow[]> { return this.core.snapshotRows(o, now); }
}
