/**
 * The change feed on PostgreSQL: every relay sharing the database delivers every change, in cursor
 * order, to its listeners. The orders table is the truth (`cursor > last ORDER BY cursor`; the feed
 * lock in core.ts makes any snapshot see a prefix of the cursors, so stepping `last` forward never
 * skips one); what makes a relay look is only a wake-up:
 * - NOTIFY on FEED_CHANNEL, on a dedicated connection (LISTEN does not survive a pooled one);
 * - core.onFeedCommit: this process committed a change (read at once, no round trip);
 * - a safety poll, for a NOTIFY lost with a dropped connection.
 * One read at a time; wake-ups during a read make exactly one more.
 */
import pg from 'pg';
import type { ChangeFeed, ChangeListener, OrderRow, SnapshotBounds } from '../repo-types';
import { FEED_CHANNEL, type PgCore } from './core';
import { buildOrders, execOf, ORDER_COLUMNS, toOrderRow, type Exec } from './orders';

/** Rows per read statement (a relay far behind reads in slices, still one snapshot). */
const BATCH = 1000;
const OPEN_SQL = "('NOTPAY','USERPAYING')";

export interface PgFeedOptions {
  /** For the dedicated LISTEN connection. */
  connectionString: string;
  applicationName?: string;
  /** Safety poll period (default 1000 ms). */
  pollMs?: number;
  /** Longest wait between reconnection attempts (default 3000 ms). */
  maxBackoffMs?: number;
}

export class FeedClosedError extends Error {
  readonly code = 'FEED_CLOSED';
  constructor() {
    super('the change feed is closed');
  }
}

interface Waiter {
  /** Resolved once the read with this number finished. */
  target: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class PgFeed implements ChangeFeed {
  private listeners: ChangeListener[] = [];
  private last = 0;
  private client: pg.Client | null = null;
  private stopped = false;
  private reading: Promise<void> | null = null;
  private again = false;
  /** Reads started so far (a read's number). */
  private started = 0;
  private waiters: Waiter[] = [];
  private poll: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private backoff = 0;

  constructor(private readonly core: PgCore, private readonly o: PgFeedOptions) {}

  /** Delivers changes committed from now on (no history replay). */
  async start(): Promise<void> {
    const [r] = await this.core.q<{ c: string }>('SELECT COALESCE(MAX(cursor), 0) AS c FROM orders');
    this.last = Number(r!.c);
    this.core.onFeedCommit = () => this.wake();
    await this.connect();
    this.poll = setInterval(() => this.wake(), this.o.pollMs ?? 1000);
    this.poll.unref();
  }

  onChange(l: ChangeListener): void {
    this.listeners.push(l);
  }

  cursor(): number {
    return this.last;
  }

  /** The LISTEN connection is up (health). */
  listening(): boolean {
    return this.client !== null;
  }

  catchUp(): Promise<void> {
    if (this.stopped) return Promise.reject(new FeedClosedError());
    return new Promise((resolve, reject) => {
      // The next read to start: the one in progress (if any) may have looked before the call.
      this.waiters.push({ target: this.started + 1, resolve, reject });
      this.wake();
    });
  }

  /**
   * Rows up to what this process delivered (cursor()): a row changed again since comes later on
   * the live feed with its newer cursor, not twice.
   */
  async changedRowsSince(since: number, max: number): Promise<OrderRow[] | null> {
    const upto = this.last;
    if (since > upto) return null;
    const more = await this.core.q('SELECT 1 FROM orders WHERE cursor > $1 AND cursor <= $2 ORDER BY cursor LIMIT 1 OFFSET $3', [since, upto, max]);
    if (more.length) return null;
    const rows = (await this.core.q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE cursor > $1 AND cursor <= $2 ORDER BY cursor LIMIT $3`, [since, upto, max + 1])).map(toOrderRow);
    return rows.length > max ? null : rows;
  }

  snapshotRows(o: SnapshotBounds, now = Date.now()): Promise<OrderRow[]> {
    return this.snapshot(async (q) => {
      const rows = new Map<string, OrderRow>();
      const open = o.terminal === undefined
        ? await q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE state IN ${OPEN_SQL} AND creation != 'FAILED' ORDER BY created_ms DESC LIMIT $1`, [o.maxOpen])
        : await q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE state IN ${OPEN_SQL} AND creation != 'FAILED' AND terminal = $1 ORDER BY created_ms DESC LIMIT $2`, [o.terminal, o.maxOpen]);
      for (const r of open) rows.set(r.combine_out_trade_no, r);
      const recent = o.terminal === undefined
        ? await q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE cursor > 0 ORDER BY cursor DESC LIMIT $1`, [o.recent])
        : await q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE terminal = $1 ORDER BY created_ms DESC LIMIT $2`, [o.terminal, o.recent]);
      for (const r of recent) if (r.updated_ms >= now - 3_600_000) rows.set(r.combine_out_trade_no, r);
      return [...rows.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    });
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.poll);
    clearTimeout(this.retry);
    this.core.onFeedCommit = () => {};
    await this.reading;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
    for (const w of this.waiters.splice(0)) w.reject(new FeedClosedError());
  }

  // ─── reading ─────────────────────────────────────────────────────────────────────────────

  private wake(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = this.loop();
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        const n = ++this.started;
        let error: unknown = null;
        try {
          await this.read();
        } catch (err) {
          // The database is away: the poll (or the next wake-up) tries again.
          error = err;
        }
        this.settle(n, error);
      } while (this.again && !this.stopped);
    } finally {
      this.reading = null;
    }
  }

  private settle(n: number, error: unknown): void {
    const due = this.waiters.filter((w) => w.target <= n);
    if (!due.length) return;
    this.waiters = this.waiters.filter((w) => w.target > n);
    for (const w of due) error === null ? w.resolve() : w.reject(error);
  }

  /** Everything after `last`, in one snapshot, to the listeners in cursor order. */
  private async read(): Promise<void> {
    await this.snapshot(async (q, exec) => {
      for (;;) {
        const rows = await q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE cursor > $1 ORDER BY cursor LIMIT ${BATCH}`, [this.last], 'feed_since');
        if (!rows.length) return;
        const orders = await buildOrders(exec, rows);
        rows.forEach((r, i) => {
          this.last = r.cursor;
          const change = { cursor: r.cursor, order: orders[i]! };
          for (const l of this.listeners) {
            try {
              l(change);
            } catch {
              // One listener's failure must not keep the change from the others, nor stop the feed.
            }
          }
        });
        if (rows.length < BATCH) return;
      }
    });
  }

  /** fn inside one read-only REPEATABLE READ transaction: its reads see one moment. */
  private async snapshot<T>(fn: (q: (sql: string, params: unknown[], name?: string) => Promise<OrderRow[]>, exec: Exec) => Promise<T>): Promise<T> {
    const c = await this.core.pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const exec = execOf(c);
      const out = await fn(async (sql, params, name) => (await exec(sql, params, name)).map(toOrderRow), exec);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      c.release(broken ? true : undefined);
    }
  }

  // ─── the LISTEN connection ───────────────────────────────────────────────────────────────

  private async connect(): Promise<void> {
    // keepAlive: a silently dropped network path is noticed (then reconnected), not listened on forever.
    const c = new pg.Client({ connectionString: this.o.connectionString, application_name: this.o.applicationName ?? 'relay-feed', keepAlive: true });
    c.on('error', () => this.lost(c));
    c.on('end', () => this.lost(c));
    c.on('notification', () => this.wake());
    try {
      await c.connect();
      await c.query(`LISTEN ${FEED_CHANNEL}`);
    } catch (err) {
      await c.end().catch(() => {});
      throw err;
    }
    if (this.stopped) {
      await c.end().catch(() => {});
      return;
    }
    this.client = c;
    this.backoff = 0;
    // Whatever was committed while nobody listened.
    this.wake();
  }

  private lost(c: pg.Client): void {
    if (c !== this.client || this.stopped) return;
    this.client = null;
    c.end().catch(() => {});
    this.reconnectLater();
  }

  private reconnectLater(): void {
    this.backoff = Math.min(Math.max(100, this.backoff * 2), this.o.maxBackoffMs ?? 3000);
    this.retry = setTimeout(() => {
      if (this.stopped) return;
      this.connect().catch(() => this.reconnectLater());
    }, this.backoff);
    this.retry.unref();
  }
}
