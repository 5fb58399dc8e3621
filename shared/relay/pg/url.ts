/** RELAY_DATABASE_URL's shape, checked without loading the driver (config.ts runs it at start). */
import { ConfigError } from '../../wechatpay/errors';

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
