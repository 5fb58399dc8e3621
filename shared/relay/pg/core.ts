/**
 * What every PostgreSQL repository shares: the pool, transactions, and the change-feed protocol.
 *
 * The change cursor. Terminals resume with `?since=<cursor>` on any relay, so a reader of the feed
 * (`SELECT … WHERE cursor > $last ORDER BY cursor`) must never see cursor N+1 committed while N is
 * still to come: it would step past N for good. Numbers from a sequence alone do not give that —
 * transactions commit in any order. So every transaction that changes what an Order shows takes
 * one transaction-scoped advisory lock (FEED_LOCK_KEY) and draws its cursor under it; the lock is
 * released only after the commit is visible, so the next holder's cursor is larger AND becomes
 * visible later: a snapshot always sees a prefix of the cursors (gaps of rolled-back transactions
 * are harmless). The same transaction sends NOTIFY (delivered at commit) to wake every relay's
 * feed reader (feed.ts).
 *
 * Deadlock rule: a feed transaction takes the feed lock BEFORE it locks any orders/refunds row or
 * inserts a notification id (`tx(fn, { feed: true })` takes it first), so no transaction holding the
 * lock ever waits for a row lock held by one that waits for the lock.
 */
import type { Pool, PoolClient, QueryResultRow } from 'pg';

/** Advisory lock key of the change feed ("relayfed" as ASCII). */
export const FEED_LOCK_KEY = 0x72656c6179666564n.toString();
/** NOTIFY channel the feed readers LISTEN on. */
export const FEED_CHANNEL = 'relay_feed';

/** SQLSTATEs worth one more try of the whole transaction (serialization failure, deadlock). */
const RETRYABLE = new Set(['40001', '40P01']);

export interface TxOptions {
  /** Take the feed lock first: the transaction changes what an Order shows (see top). */
  feed?: boolean;
}

/** A client inside a transaction, with the feed lock state. */
export interface Tx {
  readonly c: PoolClient;
  q<R extends QueryResultRow = QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Takes the feed lock now (once); needed before touch(). */
  lockFeed(): Promise<void>;
  /**
   * Inside a feed transaction: the order's new version and cursor (and NOTIFY at commit). null
   * when there is no such order.
   */
  touch(no: string, now: number): Promise<number | null>;
  /** The next cursor (feed lock held), for an UPDATE that sets `cursor` itself. */
  nextCursor(): Promise<number>;
  /**
   * For statements that draw their cursors themselves (`cursor = nextval('change_cursor')`, feed
   * lock held): the NOTIFY of this transaction, sent once.
   */
  notifyFeed(): Promise<void>;
}

export class PgCore {
  /** Called after a commit that carried feed changes (the local feed reader reads at once). */
  onFeedCommit: () => void = () => {};

  constructor(readonly pool: Pool) {}

  async q<R extends QueryResultRow = QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows;
  }

  /**
   * BEGIN … COMMIT around fn (READ COMMITTED), rolled back when it throws; retried (up to 3 times)
   * on a serialization failure or deadlock, so fn must only touch the database.
   */
  async tx<T>(fn: (t: Tx) => Promise<T>, o: TxOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.pool.connect();
      let locked = false;
      let fed = false;
      const t: Tx = {
        c,
        q: async (sql, params = []) => (await c.query(sql, params)).rows,
        lockFeed: async () => {
          if (locked) return;
          await c.query('SELECT pg_advisory_xact_lock($1)', [FEED_LOCK_KEY]);
          locked = true;
        },
        notifyFeed: async () => {
          if (!locked) throw new Error('a feed change outside the feed lock');
          if (fed) return;
          await c.query('SELECT pg_notify($1, \'\')', [FEED_CHANNEL]);
          fed = true;
        },
        nextCursor: async () => {
          await t.notifyFeed();
          return Number((await c.query<{ n: string }>("SELECT nextval('change_cursor') AS n")).rows[0]!.n);
        },
        touch: async (no, now) => {
          const cursor = await t.nextCursor();
          const r = await c.query('UPDATE orders SET version = version + 1, updated_ms = $2, cursor = $3 WHERE combine_out_trade_no = $1', [no, now, cursor]);
          return r.rowCount ? cursor : null;
        },
      };
      let broken = false;
      try {
        await c.query('BEGIN');
        if (o.feed) await t.lockFeed();
        const out = await fn(t);
        await c.query('COMMIT');
        if (fed) this.onFeedCommit();
        return out;
      } catch (err) {
        try {
          await c.query('ROLLBACK');
        } catch {
          broken = true;
        }
        const code = (err as { code?: string }).code;
        if (code && RETRYABLE.has(code) && attempt < 3) continue;
        throw err;
      } finally {
        // A client whose ROLLBACK failed (connection lost) is not given back to the pool.
        c.release(broken ? true : undefined);
      }
    }
  }
}
