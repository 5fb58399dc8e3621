/** The relay's PostgreSQL engine (issue 14): pool, schema, migrator, repositories and the store. */
export { openPg, parseDatabaseUrl, type PgPool, type OpenPgOptions } from './open';
export { migratePg, checkPgSchema, PgSchemaError, MIGRATION_LOCK_KEY, type MigrateResult } from './migrate';
export { PG_MIGRATIONS, PG_SCHEMA_VERSION, type PgMigration } from './migrations';
export { PgCore, FEED_CHANNEL, FEED_LOCK_KEY, type Tx, type TxOptions } from './core';
export { PgOrders } from './orders';
export { PgNotifications } from './notifications';
export { PgTerminals, PgAlerts, PgAudit } from './terminals';
export { PgFeed, FeedClosedError, type PgFeedOptions } from './feed';
export { PgStore, openPgStore, type OpenPgStoreOptions } from './store';
