/**
 * SQLite (better-sqlite3) in WAL mode with versioned migrations.
 *
 * Durability: a notification is answered 2xx only after its transaction committed. In WAL
 * mode with synchronous=NORMAL a commit is a write() of the WAL frames into the OS: a killed
 * process (SIGKILL, crash) loses nothing that committed, which is the failure the relay must
 * survive. Only a power loss can drop the last commits; such an order stays non-final and the
 * reconciler's query brings it to SUCCESS anyway. RELAY_DB_SYNCHRONOUS=FULL fsyncs every
 * commit for deployments that want power-loss durability at a throughput cost.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE terminals (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('cashier','manager')),
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
      );
      CREATE TABLE orders (
        combine_out_trade_no TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        total_amount INTEGER NOT NULL,
        description TEXT,
        code_url TEXT,
        created_at TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_at TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        paid_at TEXT,
        paid_ms INTEGER,
        closed_at TEXT,
        updated_ms INTEGER NOT NULL,
        terminal TEXT NOT NULL,
        creation TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        idempotency_key TEXT,
        request_hash TEXT NOT NULL,
        request_json TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        watch INTEGER NOT NULL DEFAULT 1,
        next_check_ms INTEGER NOT NULL,
        check_attempts INTEGER NOT NULL DEFAULT 0,
        UNIQUE (terminal, idempotency_key)
      );
      CREATE INDEX orders_watch ON orders (watch, next_check_ms);
      CREATE INDEX orders_created ON orders (created_ms);
      CREATE INDEX orders_state ON orders (state);
      CREATE INDEX orders_updated ON orders (updated_ms);
      CREATE INDEX orders_paid ON orders (paid_ms);
      CREATE TABLE sub_orders (
        out_trade_no TEXT PRIMARY KEY,
        combine_out_trade_no TEXT NOT NULL REFERENCES orders (combine_out_trade_no),
        idx INTEGER NOT NULL,
        mchid TEXT NOT NULL,
        description TEXT NOT NULL,
        amount INTEGER NOT NULL,
        attach TEXT,
        transaction_id TEXT,
        state TEXT NOT NULL
      );
      CREATE INDEX sub_orders_combine ON sub_orders (combine_out_trade_no, idx);
      -- One row per applied notification id: the UNIQUE key is what makes duplicates no-ops.
      CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        combine_out_trade_no TEXT NOT NULL,
        event_type TEXT NOT NULL,
        received_at TEXT NOT NULL,
        changed INTEGER NOT NULL
      );
      -- Change feed for /v1/events resume: one row per order change, cursor = rowid.
      CREATE TABLE events (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT,
        combine_out_trade_no TEXT NOT NULL,
        at_ms INTEGER NOT NULL
      );
      CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        combine_out_trade_no TEXT,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        dedupe_key TEXT UNIQUE
      );
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        terminal TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
      );
      CREATE TABLE bill_rows (
        bill_date TEXT NOT NULL,
        mchid TEXT NOT NULL,
        out_trade_no TEXT NOT NULL,
        refund_no TEXT NOT NULL,
        trade_state TEXT NOT NULL,
        transaction_id TEXT,
        attach TEXT,
        amount INTEGER NOT NULL,
        fee_millifen INTEGER NOT NULL,
        trade_time TEXT,
        PRIMARY KEY (bill_date, mchid, out_trade_no, refund_no)
      );
      CREATE TABLE bill_runs (
        id INTEGER PRIMARY KEY,
        bill_date TEXT NOT NULL,
        at TEXT NOT NULL,
        terminal TEXT NOT NULL,
        report TEXT NOT NULL
      );
    `,
  },
  {
    // Fewer pages written per notification: every index an UPDATE touches is one more WAL
    // page per commit. Lists, snapshots and takings range over created_ms instead (an order
    // is paid or changed within its validity, at most 7 days after creation).
    version: 2,
    sql: `
      DROP INDEX orders_state;
      DROP INDEX orders_updated;
      DROP INDEX orders_paid;
      DROP INDEX orders_watch;
      CREATE INDEX orders_due ON orders (next_check_ms) WHERE watch = 1;
      CREATE TABLE notifications_v2 (
        id TEXT PRIMARY KEY,
        combine_out_trade_no TEXT NOT NULL,
        event_type TEXT NOT NULL,
        received_at TEXT NOT NULL,
        changed INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO notifications_v2 SELECT id, combine_out_trade_no, event_type, received_at, changed FROM notifications;
      DROP TABLE notifications;
      ALTER TABLE notifications_v2 RENAME TO notifications;
    `,
  },
  {
    // Every change rewrites just the order row: its change-feed cursor and the sub-orders'
    // transaction ids live on it (sub-order state always equals the order's: all-or-nothing
    // payment). sub_orders keeps what was created; its state/transaction_id columns are no
    // longer written. Two pages per notification commit instead of four.
    version: 3,
    sql: `
      ALTER TABLE orders ADD COLUMN cursor INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE orders ADD COLUMN transaction_ids TEXT;
      UPDATE orders SET cursor = COALESCE((SELECT MAX(e.cursor) FROM events e WHERE e.combine_out_trade_no = orders.combine_out_trade_no), 0);
      UPDATE orders SET transaction_ids = (SELECT json_group_object(s.out_trade_no, s.transaction_id) FROM sub_orders s
        WHERE s.combine_out_trade_no = orders.combine_out_trade_no AND s.transaction_id IS NOT NULL);
      DROP TABLE events;
    `,
  },
  {
    // What a notification's sub-orders must be, as one comparable value (JSON of
    // [mchid, out_trade_no, amount] sorted by out_trade_no): the notification path checks the
    // sub-orders inside its UPDATE's WHERE clause instead of reading them first.
    version: 4,
    sql: `
      ALTER TABLE orders ADD COLUMN sub_key TEXT;
      UPDATE orders SET sub_key = (SELECT json_group_array(json_array(s.mchid, s.out_trade_no, s.amount) ORDER BY s.out_trade_no)
        FROM sub_orders s WHERE s.combine_out_trade_no = orders.combine_out_trade_no);
    `,
  },
  {
    // Years of history: every screen's query costs O(its result). Open orders (a small
    // partial index, so a state change touches it only when an order leaves the open set),
    // the change cursor (start-up MAX(cursor) and bounded replay), a terminal's orders, and
    // transaction ids for number search (exact or prefix; written once, when WeChat Pay
    // reports them). New orders also drop their create body once created (store.ts); old
    // rows keep theirs, so this migration does not rewrite history.
    version: 5,
    sql: `
      CREATE INDEX orders_open ON orders (created_ms) WHERE state IN ('NOTPAY','USERPAYING');
      CREATE INDEX orders_cursor ON orders (cursor);
      CREATE INDEX orders_terminal ON orders (terminal, created_ms);
      CREATE TABLE order_transactions (
        transaction_id TEXT PRIMARY KEY,
        combine_out_trade_no TEXT NOT NULL
      ) WITHOUT ROWID;
      INSERT OR IGNORE INTO order_transactions (transaction_id, combine_out_trade_no)
        SELECT j.value, o.combine_out_trade_no FROM orders o, json_each(o.transaction_ids) j
        WHERE o.transaction_ids IS NOT NULL AND j.value IS NOT NULL;
    `,
  },
  {
    // Takings of a day: that day's paid orders, not the 9 days of orders created around it.
    // Written once per order, when it is paid.
    version: 6,
    sql: `CREATE INDEX orders_paid_success ON orders (paid_ms) WHERE state = 'SUCCESS';`,
  },
  {
    // A cashier's snapshot and start-up list are its own open orders: the open-orders index
    // leads with the terminal (still small: open orders only; an all-terminals read sorts it).
    version: 7,
    sql: `
      DROP INDEX orders_open;
      CREATE INDEX orders_open ON orders (terminal, created_ms) WHERE state IN ('NOTPAY','USERPAYING');
    `,
  },
  {
    // Contract §2 `kind`: a one-merchant sale is created, queried and closed with basic Native
    // (`single`); every order before this migration had 2–10 sub-orders (`combine`).
    version: 8,
    sql: `ALTER TABLE orders ADD COLUMN kind TEXT NOT NULL DEFAULT 'combine' CHECK (kind IN ('combine','single'));`,
  },
  {
    // Counter operations (order timeline, shifts, manager PIN). How a payment became known rides
    // on the order row the change rewrites anyway (no extra page per notification); what the
    // terminals report (slip/receipt printed) and closes/refunds in the audit log are found by order.
    version: 9,
    sql: `
      ALTER TABLE orders ADD COLUMN paid_via TEXT;
      CREATE TABLE order_events (
        id INTEGER PRIMARY KEY,
        combine_out_trade_no TEXT NOT NULL,
        at TEXT NOT NULL,
        terminal TEXT NOT NULL,
        type TEXT NOT NULL,
        detail TEXT
      );
      CREATE INDEX order_events_order ON order_events (combine_out_trade_no, id);
      CREATE INDEX audit_log_target ON audit_log (target) WHERE target IS NOT NULL;
      CREATE TABLE shifts (
        id INTEGER PRIMARY KEY,
        terminal TEXT NOT NULL,
        cashier TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        opened_ms INTEGER NOT NULL,
        closed_at TEXT,
        closed_ms INTEGER,
        closed_by TEXT,
        report TEXT
      );
      CREATE UNIQUE INDEX shifts_open ON shifts (terminal) WHERE closed_ms IS NULL;
      CREATE INDEX shifts_opened ON shifts (opened_ms);
      CREATE TABLE manager_pin (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        hash TEXT NOT NULL,
        salt TEXT NOT NULL,
        set_at TEXT NOT NULL,
        set_by TEXT NOT NULL
      );
      CREATE TABLE pin_guard (
        terminal TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
  {
    // Refunds per sub-order (sqlite/refunds.ts): recorded before WeChat Pay is called; the
    // sub-order index serves the remaining-amount check, the partial index the follower.
    version: 10,
    sql: `
      CREATE TABLE refunds (
        out_refund_no TEXT PRIMARY KEY,
        combine_out_trade_no TEXT NOT NULL REFERENCES orders (combine_out_trade_no),
        out_trade_no TEXT NOT NULL,
        mchid TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        total INTEGER NOT NULL,
        reason TEXT,
        status TEXT NOT NULL CHECK (status IN ('PENDING','PROCESSING','SUCCESS','CLOSED','ABNORMAL','FAILED')),
        refund_id TEXT,
        created_at TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        success_time TEXT,
        terminal TEXT NOT NULL,
        idempotency_key TEXT,
        request_hash TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        watch INTEGER NOT NULL DEFAULT 1,
        next_check_ms INTEGER NOT NULL,
        check_attempts INTEGER NOT NULL DEFAULT 0,
        UNIQUE (terminal, idempotency_key)
      );
      CREATE INDEX refunds_order ON refunds (combine_out_trade_no);
      CREATE INDEX refunds_sub ON refunds (out_trade_no);
      CREATE INDEX refunds_created ON refunds (created_ms);
      CREATE INDEX refunds_due ON refunds (next_check_ms) WHERE watch = 1;
    `,
  },
  {
    // Manager elevations in the database (issue 14): an elevation one relay gave must hold on
    // every relay sharing the store, and a lock or a new PIN must end it on all of them. Only the
    // SHA-256 of the value is kept; expired rows are swept when the next one is given.
    version: 11,
    sql: `
      CREATE TABLE manager_elevations (
        hash TEXT PRIMARY KEY,
        terminal TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX manager_elevations_expires ON manager_elevations (expires_ms);
    `,
  },
];

// Versions must rise one by one: two parts adding "the next" migration at once must not both ship.
MIGRATIONS.forEach((m, i) => {
  if (m.version !== i + 1) throw new Error(`relay migrations: entry ${i} has version ${m.version}, expected ${i + 1}`);
});

/**
 * The database holds order history and token hashes: owner-only. A folder the relay creates
 * is 0700 and a new database file 0600, set with chmod so the umask cannot widen (or, for the
 * folder, cripple) them; SQLite gives -wal and -shm the database file's mode. An existing
 * folder is left as the operator made it.
 */
function privateFile(path: string): void {
  const created = mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (created) {
    // mkdir -p: every folder from the first created one down is ours.
    for (let d = dirname(path); d.length >= created.length; d = dirname(d)) chmodSync(d, 0o700);
  }
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}

export function openDb(path: string, opts: { synchronous?: 'NORMAL' | 'FULL' } = {}): Db {
  if (path !== ':memory:') privateFile(path);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  if (path !== ':memory:') for (const f of [`${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
  // Another process (the add-terminal CLI) may hold the write lock briefly.
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  // Backstop only: routine checkpoints run in a worker thread (checkpoint.ts).
  db.pragma('wal_autocheckpoint = 20000');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, new Date().toISOString());
    }).immediate();
  }
}
