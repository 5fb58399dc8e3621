/**
 * The relay's PostgreSQL connection pool (node-postgres; why this driver: README "Running two
 * relays"). Not used by `relay serve` yet: only `relay migrate` and the tests open it.
 */
import pg from 'pg';
import { ConfigError } from '../../wechatpay/errors';

export type PgPool = pg.Pool;

export interface OpenPgOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  applicationName?: string;
}

/** Checks the URL's shape (a ConfigError naming RELAY_DATABASE_URL) without connecting. */
export function parseDatabaseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Never echo the value: it may carry a password.
    throw new ConfigError('RELAY_DATABASE_URL', 'not a URL (postgres://user:password@host:port/database)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ConfigError('RELAY_DATABASE_URL', `must be postgres:// or postgresql://, got ${u.protocol}`);
  if (!u.pathname || u.pathname === '/') throw new ConfigError('RELAY_DATABASE_URL', 'names no database (postgres://user:password@host:port/database)');
  return u;
}

export function openPg(url: string, opts: OpenPgOptions = {}): PgPool {
  parseDatabaseUrl(url);
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: opts.applicationName ?? 'relay' });
  // An idle connection the server drops (restart, failover) emits 'error' on the pool; unhandled,
  // it would end the process. The pool discards that client and makes a new one when needed.
  pool.on('error', () => {});
  return pool;
}
