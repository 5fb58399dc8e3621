/**
 * The relay: the one holder of the merchant key and the one party that talks to WeChat Pay.
 * `startRelay(config)` wires the parts; `addTerminal` issues a terminal token.
 */
import { loadCredentials, type Credentials } from '../wechatpay/credentials';
import { WechatPayClient, type ClientOverrides } from '../wechatpay/client';
import { MerchantClients } from '../wechatpay/merchant-keys';
import { Authenticator, createTerminal, type Role } from './auth';
import { BillService } from './bills';
import { CounterRoutes } from './counter-routes';
import { EventHub } from './events';
import { createLogger, type Logger } from './log';
import { NotificationHandler } from './notify';
import { OrderService } from './orders';
import { Reconciler } from './reconcile';
import { RelayServer } from './server';
import { RefundService } from './refunds';
import type { PayClient, PayClients } from './upstream';
import type { RelayConfig } from './config';
import type { RelayStore } from './repo-types';
import { openSqliteStore } from './sqlite/index';

export { loadRelayConfig, ConfigError, type RelayConfig } from './config';
export { RelayError } from './errors';
export type { PayClient, PayClients } from './upstream';

export interface RelayHandle {
  url: string;
  close(): Promise<void>;
}

export interface StartRelayOptions {
  /** Defaults to one WechatPayClient per merchant with keys in the credentials folder. */
  clients?: PayClients;
  /** Options for the default clients (timeouts, retries). */
  clientOptions?: ClientOverrides;
  credentials?: Credentials;
  log?: Logger;
  /**
   * Tests and demos: the public URL is the URL the relay listens on (with RELAY_PORT=0 it is known
   * only once bound; RELAY_PUBLIC_URL is then not used). A real relay sits behind a TLS proxy and
   * keeps RELAY_PUBLIC_URL.
   */
  publicUrlFromListen?: boolean;
}

export async function startRelay(config: RelayConfig, opts: StartRelayOptions = {}): Promise<RelayHandle> {
  const log = opts.log ?? createLogger(config.logLevel);
  const credentials = opts.credentials ?? loadCredentials(config.credentialsDir);
  // One client per merchant, each with its own keys and (certificate mode) its own platform
  // certificate store; keys were parsed once by loadCredentials.
  const owned = opts.clients ? null : MerchantClients.fromCredentials<PayClient>(credentials, (k) => WechatPayClient.fromCredentials(k, { baseUrl: config.baseUrl, ...opts.clientOptions }));
  const clients: PayClients = opts.clients ?? owned!;
  let notifyUrl = `${config.publicUrl}/wechatpay/notify`;
  const store = await openStore(config, log);
  const auth = new Authenticator(store.terminals);
  const hub = new EventHub(store, auth, log, { heartbeatMs: config.heartbeatSeconds * 1000, perTerminal: config.eventsPerTerminal });
  const orders = new OrderService({
    store, clients, credentials, log,
    notifyUrl: () => notifyUrl,
    queryAfterSeconds: config.queryAfterSeconds,
    closeMinAgeSeconds: config.closeMinAgeSeconds,
    defaultExpireMinutes: config.defaultExpireMinutes,
    onAlert: (a) => hub.alert(a),
  });
  const notify = new NotificationHandler(store, orders, clients, credentials, config.notifyMaxBytes, log);
  // Refunds per sub-order, each signed by that sub-order's own merchant (refunds.ts).
  const refunds = new RefundService({
    store, clients, log, notifyUrl: () => notifyUrl,
    queryAfterSeconds: config.queryAfterSeconds, tickMs: config.reconcileTickMs,
    alert: (kind, no, message, key) => orders.alert(kind, no, message, key),
  });
  notify.refunds = refunds;
  // RELAY_QUERY_AFTER_SECONDS is in each order's first next_check_ms (orders.ts).
  const reconciler = new Reconciler(store, orders, log, { closeMinAgeSeconds: config.closeMinAgeSeconds, tickMs: config.reconcileTickMs });
  const bills = new BillService({ store, clients, credentials, log, publish: (e) => hub.publish(e), maxMismatches: config.billMaxMismatches });
  const counter = new CounterRoutes({ store, auth, merchants: () => credentials.subMerchants });
  const server = new RelayServer({ store, auth, orders, notify, hub, reconciler, bills, refunds, credentials, log, counter, limits: config });
  let url: string;
  try {
    url = await server.listen(config.host, config.port);
  } catch (err) {
    await store.close();
    throw err;
  }
  // Nothing is sent to WeChat Pay before this point: requests, the reconciler and refunds start after.
  if (opts.publicUrlFromListen) notifyUrl = `${url.replace(/\/$/, '')}/wechatpay/notify`;
  await reconciler.start();
  await refunds.start();
  log.info({
    url, store: store.engine, mchid: credentials.mchid, sub_merchants: credentials.subMerchants.length,
    // Who can act for itself here (bills, refunds, single sales); the others sell in combined orders only.
    merchants_with_keys: credentials.subMerchants.filter((s) => clients.has(s.mchid)).map((s) => s.mchid),
  }, 'relay listening');
  return {
    url,
    close: async () => {
      await server.close();
      owned?.close();
    },
  };
}

/**
 * The store RELAY_DATABASE_URL / RELAY_DB name. PostgreSQL is loaded only when used; its schema
 * must be at this relay's version (`npm run relay -- migrate` first: serving never migrates).
 */
export type StoreConfig = Pick<RelayConfig, 'databaseUrl' | 'databasePool' | 'dbPath' | 'dbSynchronous'>;

export async function openStore(config: StoreConfig, log?: Logger): Promise<RelayStore> {
  if (config.databaseUrl) {
    const { openPgStore } = await import('./pg/store');
    return openPgStore(config.databaseUrl, { poolMax: config.databasePool, applicationName: 'relay' });
  }
  return openSqliteStore(config.dbPath, {
    synchronous: config.dbSynchronous,
    onCheckpointError: (message) => log?.warn({ err: message }, 'checkpoint failed'),
  });
}

/**
 * Creates a terminal and returns its bearer token (shown once; only its hash is stored), in the
 * store the config names (PostgreSQL: every relay on that database accepts it).
 */
export async function addTerminal(configOrDbPath: StoreConfig | string, name: string, role: Role | string): Promise<string> {
  const store = typeof configOrDbPath === 'string'
    ? openSqliteStore(configOrDbPath, { checkpoints: false })
    : await openStore(configOrDbPath);
  try {
    return await createTerminal(store.terminals, name, role);
  } finally {
    await store.close();
  }
}
