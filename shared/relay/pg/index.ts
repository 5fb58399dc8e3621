/** The relay's PostgreSQL groundwork (issue 14): pool, schema, migrator. Not wired into serving yet. */
export { openPg, parseDatabaseUrl, type PgPool, type OpenPgOptions } from './open';
export { migratePg, checkPgSchema, PgSchemaError, MIGRATION_LOCK_KEY, type MigrateResult } from './migrate';
export { PG_MIGRATIONS, PG_SCHEMA_VERSION, type PgMigration } from './migrations';
