/**
 * Relay configuration from the environment (contract §2 plus documented extensions),
 * validated once at start: a bad or missing setting is a ConfigError naming the variable.
 */
import { ConfigError } from '../wechatpay/errors';
import { MAX_EXPIRE_MINUTES } from '../contracts/relay-api';
import { parseDatabaseUrl } from './pg/url';

export { ConfigError };

export interface RelayConfig {
  credentialsDir: string;
  baseUrl: string;
  publicUrl: string;
  host: string;
  port: number;
  dbPath: string;
  /**
   * Contract §2 RELAY_DATABASE_URL: all state in PostgreSQL (RELAY_DB is then ignored); several
   * relay processes may share it. Undefined: SQLite at dbPath.
   */
  databaseUrl?: string;
  /** Extension RELAY_DATABASE_POOL: PostgreSQL connections of this relay's pool. */
  databasePool: number;
  queryAfterSeconds: number;
  /** Extension RELAY_CLOSE_MIN_AGE_SECONDS: the local "no close within 5 minutes" rule. */
  closeMinAgeSeconds: number;
  /** Extension RELAY_HEARTBEAT_SECONDS: ping interval on /v1/events; a missed pong drops the socket. */
  heartbeatSeconds: number;
  /** Extension RELAY_NOTIFY_MAX_BYTES: largest notification body accepted. */
  notifyMaxBytes: number;
  /** Extension RELAY_DEFAULT_EXPIRE_MINUTES: order validity when the request gives none. */
  defaultExpireMinutes: number;
  /** Extension RELAY_DB_SYNCHRONOUS: NORMAL (default, durable against process crashes in WAL) or FULL. */
  dbSynchronous: 'NORMAL' | 'FULL';
  /** Extension RELAY_LOG_LEVEL (pino level, `silent` to mute). */
  logLevel: string;
  /** Extension RELAY_RECONCILE_TICK_MS: how often the reconciler looks for due orders. */
  reconcileTickMs: number;
  /** Extension RELAY_HEADERS_TIMEOUT_MS: a request's headers must arrive within this (idle connections too). */
  headersTimeoutMs: number;
  /** Extension RELAY_BODY_TIMEOUT_MS: a request body (a notification's included) must arrive within this. */
  bodyTimeoutMs: number;
  /** Extension RELAY_MAX_CONNECTIONS: open TCP connections (WebSockets included); beyond it new ones are dropped. */
  maxConnections: number;
  /** Extension RELAY_EVENTS_PER_TERMINAL: `/v1/events` sockets per terminal; a new one closes the oldest. */
  eventsPerTerminal: number;
  /** Extension RELAY_BILL_MAX_MISMATCHES: mismatches kept in one bill report (all are counted). */
  billMaxMismatches: number;
}

type Env = Record<string, string | undefined>;

function required(env: Env, name: string): string {
  const v = env[name]?.trim();
  if (!v) throw new ConfigError(name, 'is required');
  return v;
}

function httpUrl(name: string, value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(name, `not a URL: ${JSON.stringify(value)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(name, `must be http(s), got ${u.protocol}`);
  if (u.search || u.hash) throw new ConfigError(name, 'must not carry a query string or fragment');
  return value.replace(/\/+$/, '');
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadRelayConfig(env: Env = process.env): RelayConfig {
  const credentialsDir = required(env, 'WECHATPAY_CREDENTIALS_DIR');
  const baseUrl = httpUrl('WECHATPAY_BASE_URL', env.WECHATPAY_BASE_URL?.trim() || 'https://api.mch.weixin.qq.com');
  const publicUrl = httpUrl('RELAY_PUBLIC_URL', required(env, 'RELAY_PUBLIC_URL'));
  // notify_url is ≤ 255 characters (reference §5.1).
  if ((publicUrl + '/wechatpay/notify').length > 255) throw new ConfigError('RELAY_PUBLIC_URL', 'too long: notify_url must stay within 255 characters');
  const host = env.RELAY_HOST?.trim() || '127.0.0.1';
  const port = int(env, 'RELAY_PORT', 8787, 0, 65535);
  const databaseUrl = env.RELAY_DATABASE_URL?.trim() || undefined;
  // The shape only (a ConfigError that never echoes the value: it may carry a password).
  if (databaseUrl) parseDatabaseUrl(databaseUrl);
  const dbPath = env.RELAY_DB?.trim() || 'data/relay.db';
  const sync = (env.RELAY_DB_SYNCHRONOUS?.trim() || 'NORMAL').toUpperCase();
  if (sync !== 'NORMAL' && sync !== 'FULL') throw new ConfigError('RELAY_DB_SYNCHRONOUS', `must be NORMAL or FULL, got ${JSON.stringify(sync)}`);
  const logLevel = env.RELAY_LOG_LEVEL?.trim() || 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('RELAY_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  return {
    credentialsDir,
    baseUrl,
    publicUrl,
    host,
    port,
    dbPath,
    ...(databaseUrl ? { databaseUrl } : {}),
    databasePool: int(env, 'RELAY_DATABASE_POOL', 10, 1, 1000),
    queryAfterSeconds: int(env, 'RELAY_QUERY_AFTER_SECONDS', 30, 0, 86_400),
    closeMinAgeSeconds: int(env, 'RELAY_CLOSE_MIN_AGE_SECONDS', 300, 0, 86_400),
    heartbeatSeconds: int(env, 'RELAY_HEARTBEAT_SECONDS', 15, 1, 3600),
    notifyMaxBytes: int(env, 'RELAY_NOTIFY_MAX_BYTES', 65_536, 1024, 1_048_576),
    defaultExpireMinutes: int(env, 'RELAY_DEFAULT_EXPIRE_MINUTES', 30, 1, MAX_EXPIRE_MINUTES),
    dbSynchronous: sync,
    logLevel,
    reconcileTickMs: int(env, 'RELAY_RECONCILE_TICK_MS', 1000, 50, 60_000),
    headersTimeoutMs: int(env, 'RELAY_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
    bodyTimeoutMs: int(env, 'RELAY_BODY_TIMEOUT_MS', 5_000, 100, 600_000),
    maxConnections: int(env, 'RELAY_MAX_CONNECTIONS', 4096, 1, 1_000_000),
    eventsPerTerminal: int(env, 'RELAY_EVENTS_PER_TERMINAL', 4, 1, 1000),
    billMaxMismatches: int(env, 'RELAY_BILL_MAX_MISMATCHES', 1000, 1, 100_000),
  };
}
