/**
 * Applies the PostgreSQL migrations. Several relay processes (or `relay migrate` next to a running
 * relay) may start at once: the whole run holds a transaction-scoped advisory lock, so one applies
 * each missing version and the others wait, then find nothing to do. PostgreSQL DDL is
 * transactional: a failed migration leaves the database at its previous version, never half-way.
 */
import type { Pool, PoolClient } from 'pg';
import { PG_MIGRATIONS, type PgMigration } from './migrations';

/** Advisory lock key of the migrator: any fixed int8, chosen once ("relaymig" as ASCII). */
export const MIGRATION_LOCK_KEY = 0x72656c61796d6967n;

export class PgSchemaError extends Error {
  constructor(
    readonly code: 'SCHEMA_TOO_NEW' | 'SCHEMA_NOT_MIGRATED',
    message: string,
    readonly databaseVersion: number,
    readonly knownVersion: number,
  ) {
    super(message);
    this.name = 'PgSchemaError';
  }
}

export interface MigrateResult {
  /** Version before this run (0: empty database). */
  from: number;
  to: number;
  applied: number[];
}

async function currentVersion(c: PoolClient): Promise<number> {
  const r = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
  return r.rows[0].v ?? 0;
}

function tooNew(dbVersion: number, known: number): PgSchemaError {
  return new PgSchemaError(
    'SCHEMA_TOO_NEW',
    `the database is at schema version ${dbVersion}, newer than this relay knows (${known}): run the newer relay, or restore a backup made for this version`,
    dbVersion,
    known,
  );
}

export async function migratePg(pool: Pool, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<MigrateResult> {
  const known = migrations.length ? migrations[migrations.length - 1].version : 0;
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    try {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      // Under the lock: two first-time migrators cannot race on this CREATE either.
      await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
      const from = await currentVersion(c);
      if (from > known) throw tooNew(from, known);
      const applied: number[] = [];
      for (const m of migrations) {
        if (m.version <= from) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
        applied.push(m.version);
      }
      await c.query('COMMIT');
      return { from, to: Math.max(from, known), applied };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  } finally {
    c.release();
  }
}

/**
 * For serving: the database must be at exactly the version this relay knows. Newer is refused
 * (an older relay must not write a schema it does not understand); older asks for `relay migrate`.
 */
export async function checkPgSchema(pool: Pool, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<number> {
  const known = migrations.length ? migrations[migrations.length - 1].version : 0;
  const exists = await pool.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  const v = exists.rows[0].t ? (await pool.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v ?? 0 : 0;
  if (v > known) throw tooNew(v, known);
  if (v < known) throw new PgSchemaError('SCHEMA_NOT_MIGRATED', `the database is at schema version ${v}, this relay needs ${known}: run \`npm run relay -- migrate\` first`, v, known);
  return v;
}
