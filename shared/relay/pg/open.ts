/**
 * The relay's PostgreSQL connection pool (node-postgres; why this driver: README "Running two
 * relays").
 */
import pg from 'pg';
import { parseDatabaseUrl } from './url';

export { parseDatabaseUrl };

export type PgPool = pg.Pool;

export interface OpenPgOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  applicationName?: string;
}

export function openPg(url: string, opts: OpenPgOptions = {}): PgPool {
  parseDatabaseUrl(url);
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: opts.applicationName ?? 'relay' });
  // An idle connection the server drops (restart, failover) emits 'error' on the pool; unhandled,
  // it would end the process. The pool discards that client and makes a new one when needed.
  pool.on('error', () => {});
  // A client checked out of the pool has no 'error' listener (pg-pool removes its idle one): a
  // connection ended by the server between two statements of a transaction would then throw from an
  // event emitter and end the relay. The statement in progress (or the next one) fails instead, and
  // pg-pool drops the broken client when it is released.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
