/**
 * PostgreSQL schema version 4: the counter repositories (pg/counter.ts). Manager elevations move
 * from one relay's memory into the database, so an elevation given by one relay holds on every
 * relay and a lock or a new PIN ends it everywhere; only the SHA-256 of the value is stored.
 * Mirrors SQLite migration 11 (db.ts).
 */
export const SQL_V4 = `
  CREATE TABLE manager_elevations (
    hash TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
  );
  CREATE INDEX manager_elevations_expires ON manager_elevations (expires_ms);
`;
