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
import { openDb } from './db';
import { startCheckpointer } from './checkpoint';
import { EventHub } from './events';
import { createLogger, type Logger } from './log';
import { NotificationHandler } from './notify';
import { OrderService } from './orders';
import { Reconciler } from './reconcile';
import { RelayServer } from './server';
import { OrderStore } from './store';
import { RefundStore } from './refund-store';
import { RefundService } from './refunds';
import type { PayClient, PayClients } from './upstream';
import type { RelayConfig } from './config';

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
  const db = openDb(config.dbPath, { synchronous: config.dbSynchronous });
  const checkpointer = startCheckpointer(config.dbPath, 500, (message) => log.warn({ err: message }, 'checkpoint failed'));
  const store = new OrderStore(db);
  const auth = new Authenticator(db);
  const hub = new EventHub(store, auth, log, { heartbeatMs: config.heartbeatSeconds * 1000, perTerminal: config.eventsPerTerminal });
  const orders = new OrderService({
    store, clients, credentials, log,
    notifyUrl: () => notifyUrl,
    queryAfterSeconds: config.queryAfterSeconds,
    closeMinAgeSeconds: config.closeMinAgeSeconds,
    defaultExpireMinutes: config.defaultExpireMinutes,
    onAlert: (a) => hub.alert(a),
  });
  const notify = new NotificationHandler(db, store, orders, clients, credentials, config.notifyMaxBytes, log);
  // Refunds per sub-order, each signed by that sub-order's own merchant (refunds.ts).
  const refundStore = new RefundStore(db, store);
  const refunds = new RefundService({
    store, refunds: refundStore, clients, log, notifyUrl: () => notifyUrl,
    queryAfterSeconds: config.queryAfterSeconds, tickMs: config.reconcileTickMs,
    alert: (kind, no, message, key) => orders.alert(kind, no, message, key),
  });
  notify.refunds = refunds;
  // RELAY_QUERY_AFTER_SECONDS is in each order's first next_check_ms (orders.ts).
  const reconciler = new Reconciler(store, orders, log, { closeMinAgeSeconds: config.closeMinAgeSeconds, tickMs: config.reconcileTickMs });
  const bills = new BillService({ db, clients, credentials, log, publish: (e) => hub.publish(e), maxMismatches: config.billMaxMismatches });
  const counter = new CounterRoutes({ db, store, auth, merchants: () => credentials.subMerchants, refundLedger: () => refundStore });
  const server = new RelayServer({ db, auth, orders, notify, hub, reconciler, bills, refunds, credentials, log, counter, limits: config, beforeDbClose: () => checkpointer.stop() });
  let url: string;
  try {
    url = await server.listen(config.host, config.port);
  } catch (err) {
    await checkpointer.stop();
    db.close();
    throw err;
  }
  // Nothing is sent to WeChat Pay before this point: requests, the reconciler and refunds start after.
  if (opts.publicUrlFromListen) notifyUrl = `${url.replace(/\/$/, '')}/wechatpay/notify`;
  reconciler.start();
  refunds.start();
  log.info({
    url, mchid: credentials.mchid, sub_merchants: credentials.subMerchants.length,
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

/** Creates a terminal and returns its bearer token (shown once; only its hash is stored). */
export function addTerminal(configOrDbPath: RelayConfig | string, name: string, role: Role | string): string {
  const path = typeof configOrDbPath === 'string' ? configOrDbPath : configOrDbPath.dbPath;
  const db = openDb(path);
  try {
    return createTerminal(db, name, role);
  } finally {
    db.close();
  }
}
