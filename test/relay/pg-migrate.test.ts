/**
 * PostgreSQL schema and migrator (issue 14 groundwork) against a real throwaway cluster:
 * from empty, idempotent, two concurrent migrators, a newer database refused, a failed
 * migration rolled back, and the schema covering every SQLite table and column.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { openDb } from '../../shared/relay/db';
import { checkPgSchema, migratePg, openPg, PG_MIGRATIONS, PG_SCHEMA_VERSION, PgSchemaError, type PgPool } from '../../shared/relay/pg/index';

let cluster: PgCluster;
let dbCount = 0;
const pools: PgPool[] = [];

async function freshPool(max = 2): Promise<PgPool> {
  const url = await cluster.createDatabase(`m${++dbCount}`);
  const pool = openPg(url, { max });
  pools.push(pool);
  return pool;
}

async function versions(pool: PgPool): Promise<number[]> {
  return (await pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
}

beforeAll(async () => {
  cluster = await startPgCluster({ database: 'migrate_base' });
});

afterAll(async () => {
  for (const p of pools) await p.end();
  await cluster?.stop();
});

describe('PostgreSQL migrations', () => {
  it('apply from an empty database up to the newest version, and serving accepts it', async () => {
    const pool = await freshPool();
    await expect(checkPgSchema(pool)).rejects.toMatchObject({ code: 'SCHEMA_NOT_MIGRATED' });
    const r = await migratePg(pool);
    expect(r).toEqual({ from: 0, to: PG_SCHEMA_VERSION, applied: PG_MIGRATIONS.map((m) => m.version) });
    expect(await versions(pool)).toEqual(PG_MIGRATIONS.map((m) => m.version));
    expect(await checkPgSchema(pool)).toBe(PG_SCHEMA_VERSION);
  });

  it('are idempotent: a second run applies nothing and changes nothing', async () => {
    const pool = await freshPool();
    await migratePg(pool);
    const before = (await pool.query("SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")).rows[0].n;
    const r = await migratePg(pool);
    expect(r).toEqual({ from: PG_SCHEMA_VERSION, to: PG_SCHEMA_VERSION, applied: [] });
    expect((await pool.query("SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")).rows[0].n).toBe(before);
  });

  it('two concurrent migrators (two pools) apply each version once under the advisory lock', async () => {
    const a = await freshPool();
    const b = openPg(cluster.urlFor(`m${dbCount}`), { max: 2 });
    pools.push(b);
    const [ra, rb] = await Promise.all([migratePg(a), migratePg(b)]);
    // One did the work, the other waited for the lock and then found everything applied.
    const all = [...ra.applied, ...rb.applied].sort((x, y) => x - y);
    expect(all).toEqual(PG_MIGRATIONS.map((m) => m.version));
    expect([ra.applied.length, rb.applied.length].sort()).toEqual([0, PG_MIGRATIONS.length]);
    expect(await versions(a)).toEqual(PG_MIGRATIONS.map((m) => m.version));
  });

  it('refuse a database at a newer version than this relay knows (migrate and serve check)', async () => {
    const pool = await freshPool();
    await migratePg(pool);
    await pool.query('INSERT INTO schema_migrations (version) VALUES ($1)', [PG_SCHEMA_VERSION + 1]);
    const err = await migratePg(pool).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgSchemaError);
    expect(err).toMatchObject({ code: 'SCHEMA_TOO_NEW', databaseVersion: PG_SCHEMA_VERSION + 1, knownVersion: PG_SCHEMA_VERSION });
    await expect(checkPgSchema(pool)).rejects.toMatchObject({ code: 'SCHEMA_TOO_NEW' });
    // Nothing was touched by the refused run.
    expect(await versions(pool)).toEqual([...PG_MIGRATIONS.map((m) => m.version), PG_SCHEMA_VERSION + 1]);
  });

  it('a failing migration leaves the database at its previous version, nothing half-made', async () => {
    const pool = await freshPool();
    await migratePg(pool);
    const broken = [...PG_MIGRATIONS, { version: PG_SCHEMA_VERSION + 1, sql: 'CREATE TABLE half_made (x INTEGER); SELECT no_such_column FROM orders;' }];
    await expect(migratePg(pool, broken)).rejects.toThrow(/no_such_column/);
    expect(await versions(pool)).toEqual(PG_MIGRATIONS.map((m) => m.version));
    expect((await pool.query("SELECT to_regclass('half_made') AS t")).rows[0].t).toBeNull();
  });

  it('has every table and column of the SQLite schema, and the change cursor from a BIGINT sequence', async () => {
    const pool = await freshPool();
    await migratePg(pool);
    const lite = openDb(':memory:');
    const liteCols = new Map<string, string[]>();
    for (const { name } of lite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'").all() as { name: string }[]) {
      liteCols.set(name, (lite.prepare(`SELECT name FROM pragma_table_info(?)`).all(name) as { name: string }[]).map((c) => c.name).sort());
    }
    lite.close();
    const rows = (await pool.query<{ table_name: string; column_name: string }>(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'",
    )).rows;
    const pgCols = new Map<string, string[]>();
    for (const r of rows) pgCols.set(r.table_name, [...(pgCols.get(r.table_name) ?? []), r.column_name]);
    for (const v of pgCols.values()) v.sort();
    expect(liteCols.size).toBeGreaterThan(10);
    // Every SQLite table with every column; versions 2–5 may add what only several relays on one
    // database need (tables, columns), which SQLite (one process) has no use for.
    for (const [table, cols] of liteCols) expect({ table, cols: pgCols.get(table) }).toEqual({ table, cols: expect.arrayContaining(cols) });
    // The indexes the SQLite schema names (its own queries rely on them), by name.
    const lite2 = openDb(':memory:');
    const liteIdx = (lite2.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").all() as { name: string }[]).map((r) => r.name).sort();
    lite2.close();
    const pgIdx = (await pool.query<{ indexname: string }>(
      "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
    )).rows.map((r) => r.indexname).sort();
    // Every one of them; PostgreSQL may have more (versions 2–5 add indexes its own queries need,
    // e.g. the COLLATE "C" number-search indexes of migration-core.ts).
    expect(pgIdx).toEqual(expect.arrayContaining(liteIdx));
    const seq = (await pool.query("SELECT data_type FROM information_schema.sequences WHERE sequence_name = 'change_cursor'")).rows[0];
    expect(seq.data_type).toBe('bigint');
    const cursorType = (await pool.query("SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'cursor'")).rows[0];
    expect(cursorType.data_type).toBe('bigint');
    const a = BigInt((await pool.query("SELECT nextval('change_cursor') AS n")).rows[0].n);
    const b = BigInt((await pool.query("SELECT nextval('change_cursor') AS n")).rows[0].n);
    expect(b).toBe(a + 1n);
  });

  it('keeps exactly-once notification ids: a duplicate id is rejected by the primary key', async () => {
    const pool = await freshPool();
    await migratePg(pool);
    const insert = "INSERT INTO notifications (id, combine_out_trade_no, event_type, received_at, changed) VALUES ('n1', 'o1', 'TRANSACTION.SUCCESS', '2026-01-01T00:00:00Z', 1) ON CONFLICT (id) DO NOTHING";
    expect((await pool.query(insert)).rowCount).toBe(1);
    expect((await pool.query(insert)).rowCount).toBe(0);
  });
});
