/**
 * A relay on PostgreSQL that loses its database: /healthz says so (503, the database's error,
 * never the URL), a notification is answered 503 (WeChat Pay delivers it again later) and nothing
 * of it is applied; when the database is back the relay recovers by itself (no restart): health
 * 200, the redelivered notification applied once, the terminal's socket gets the payment.
 *
 * The outage: the relay's database stops accepting connections and its sessions are ended
 * (ALLOW_CONNECTIONS false + pg_terminate_backend), as a failover or a restart of the server does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { Order } from '../../shared/contracts/relay-api';
import { stopEngines } from '../helpers/stores';
import { NotificationForge, post } from './forge';
import { api, createOrder, EventsClient, startEnv, until, type Env } from './env';

let env: Env;
let forge: NotificationForge;
let admin: pg.Client;
let database: string;

beforeAll(async () => {
  env = await startEnv({ engine: 'postgresql' });
  forge = new NotificationForge(env.dir);
  const url = new URL(env.config.databaseUrl!);
  database = url.pathname.slice(1);
  url.pathname = '/postgres';
  admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
});

afterAll(async () => {
  await admin?.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`).catch(() => {});
  await admin?.end();
  await env?.close();
  await stopEngines();
});

async function outage(on: boolean): Promise<void> {
  await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS ${on ? 'false' : 'true'}`);
  if (on) await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
}

describe('relay on PostgreSQL losing its database', () => {
  it('answers 503 while it is gone and recovers by itself when it is back', async () => {
    const order = await createOrder(env);
    const ws = await EventsClient.connect(env, env.cashier);
    // Its first message is read from the database: the outage comes after it (a socket whose first
    // message fails is closed with 1011 and its terminal reconnects — not what this test is about).
    await ws.next((m) => m.type === 'snapshot');
    const healthy = await api(env.relayUrl, 'GET', '/healthz', null);
    expect(healthy.status).toBe(200);
    expect(healthy.body).toMatchObject({ ok: true, database: { ok: true, engine: 'postgresql' } });

    await outage(true);
    const down = await until(async () => {
      const h = await api(env.relayUrl, 'GET', '/healthz', null);
      return h.status === 503 ? h : null;
    }, 15_000);
    expect(down.body).toMatchObject({ ok: false, database: { ok: false, engine: 'postgresql' } });
    expect(JSON.stringify(down.body)).not.toContain(env.config.databaseUrl!);
    const n = forge.build(order, { id: 'EV-outage-' + order.combine_out_trade_no });
    const refused = await post(env.relayUrl, n);
    expect(refused.status).toBe(503);
    // Any other request that needs the database: 503 too, with a code the terminal can show.
    const list = await api(env.relayUrl, 'GET', '/v1/orders', env.cashier);
    expect(list.status).toBe(503);
    expect(list.body.code === 'DATABASE_UNAVAILABLE' || list.body.code === undefined).toBe(true);

    await outage(false);
    await until(async () => (await api(env.relayUrl, 'GET', '/healthz', null)).status === 200, 15_000);
    // WeChat Pay delivers the notification again: applied once, pushed to the terminal.
    expect((await post(env.relayUrl, n)).status).toBe(204);
    const paid = await ws.next((m) => m.type === 'order.updated' && m.order.combine_out_trade_no === order.combine_out_trade_no && m.order.state === 'SUCCESS', 15_000);
    expect(paid.type).toBe('order.updated');
    expect((await post(env.relayUrl, n)).status).toBe(204);
    const got = await api<Order>(env.relayUrl, 'GET', `/v1/orders/${order.combine_out_trade_no}`, env.cashier);
    expect(got.body.state).toBe('SUCCESS');
    ws.close();
  });
});
