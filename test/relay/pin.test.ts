import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, createTerminal } from '../../shared/relay/auth';
import { openDb } from '../../shared/relay/db';
import { ManagerPin } from '../../shared/relay/pin';
import { SqliteCounter } from '../../shared/relay/sqlite/counter';
import { SqliteAudit, SqliteTerminals } from '../../shared/relay/sqlite/core';
import { OrderStore } from '../../shared/relay/store';
import { addTerminal } from '../../shared/relay/index';
import { api, createOrder, startEnv, type Env } from './env';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ closeMinAgeSeconds: 0 });
});
afterAll(async () => env?.close());

const elevated = (e: string) => ({ 'X-Manager-Elevation': e });

describe('manager PIN over HTTP', () => {
  it('only a manager sets it (4–8 digits); a cashier without elevation gets 403 on manager routes', async () => {
    expect((await api(env.relayUrl, 'PUT', '/v1/manager/pin', env.cashier, { pin: '2468' })).status).toBe(403);
    const bad = await api(env.relayUrl, 'PUT', '/v1/manager/pin', env.manager, { pin: '12a4' });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('pin');
    expect((await api(env.relayUrl, 'PUT', '/v1/manager/pin', env.manager, { pin: '123456789' })).status).toBe(400);
    const set = await api(env.relayUrl, 'PUT', '/v1/manager/pin', env.manager, { pin: '2468' });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ set: true });
    expect(JSON.stringify(set.body)).not.toContain('2468');
    expect((await api(env.relayUrl, 'GET', '/v1/alerts', env.cashier)).status).toBe(403);
    expect((await api(env.relayUrl, 'GET', '/v1/reports/day-end', env.cashier)).status).toBe(403);
    // The hash is scrypt with a salt: the PIN is nowhere in the database.
    const [row] = await env.sql<{ hash: string; salt: string }>('SELECT hash, salt FROM manager_pin');
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row.salt).toMatch(/^[0-9a-f]{32}$/);
  });

  it('the right PIN elevates this cashier terminal for manager routes; not another terminal; an elevation cannot change the PIN', async () => {
    const r = await api(env.relayUrl, 'POST', '/v1/manager/unlock', env.cashier, { pin: '2468' });
    expect(r.status).toBe(200);
    expect(Date.parse(r.body.expires_at) - Date.now()).toBeGreaterThan(4 * 60_000);
    const e = r.body.elevation as string;
    expect((await api(env.relayUrl, 'GET', '/v1/alerts', env.cashier, undefined, elevated(e))).status).toBe(200);
    expect((await api(env.relayUrl, 'GET', '/v1/reports/day-end', env.cashier, undefined, elevated(e))).status).toBe(200);
    expect((await api(env.relayUrl, 'PUT', '/v1/manager/pin', env.cashier, { pin: '1111' }, elevated(e))).status).toBe(403);
    const other = await addTerminal(env.config, 'till-2', 'cashier');
    expect((await api(env.relayUrl, 'GET', '/v1/alerts', other, undefined, elevated(e))).status).toBe(403);
    // An elevated close goes through (and is audited under the terminal's name).
    const order = await createOrder(env);
    const closed = await api(env.relayUrl, 'POST', `/v1/orders/${order.combine_out_trade_no}/close`, env.cashier, {}, elevated(e));
    expect(closed.status).toBe(200);
    // Locking ends it at once.
    expect((await api(env.relayUrl, 'POST', '/v1/manager/lock', env.cashier, {}, elevated(e))).status).toBe(200);
    expect((await api(env.relayUrl, 'GET', '/v1/alerts', env.cashier, undefined, elevated(e))).status).toBe(403);
  });

  it('five wrong PINs lock that terminal (423, even with the right PIN), audited', async () => {
    const t3 = await addTerminal(env.config, 'till-3', 'cashier');
    for (let i = 1; i <= 4; i++) {
      const r = await api(env.relayUrl, 'POST', '/v1/manager/unlock', t3, { pin: '0000' });
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ code: 'WRONG_PIN', tries_left: 5 - i });
    }
    const fifth = await api(env.relayUrl, 'POST', '/v1/manager/unlock', t3, { pin: '0000' });
    expect(fifth.status).toBe(423);
    expect(fifth.body.code).toBe('PIN_LOCKED');
    expect(fifth.body.retry_after_seconds).toBe(900);
    const right = await api(env.relayUrl, 'POST', '/v1/manager/unlock', t3, { pin: '2468' });
    expect(right.status).toBe(423);
    // Another terminal is not locked by till-3's misses.
    expect((await api(env.relayUrl, 'POST', '/v1/manager/unlock', env.cashier, { pin: '2468' })).status).toBe(200);
    // The lock survives a restart (kept in the database).
    await env.restartRelay();
    // A pooled socket to the old process fails before anything is sent: send again once.
    const after = await api(env.relayUrl, 'POST', '/v1/manager/unlock', t3, { pin: '2468' })
      .catch(() => api(env.relayUrl, 'POST', '/v1/manager/unlock', t3, { pin: '2468' }));
    expect(after.status).toBe(423);
    const audit = await env.sql<{ detail: string }>("SELECT detail FROM audit_log WHERE terminal = 'till-3' AND action = 'manager.unlock' ORDER BY id");
    expect(audit.map((a) => JSON.parse(a.detail).outcome)).toEqual(['WRONG_PIN', 'WRONG_PIN', 'WRONG_PIN', 'WRONG_PIN', 'LOCKED_NOW', 'PIN_LOCKED', 'PIN_LOCKED']);
  });
});

describe('elevation and lock expiry (relay clock)', () => {
  it('an elevation expires server-side; a lock ends after its time and the count starts again', async () => {
    const db = openDb(join(mkdtempSync(join(tmpdir(), 'pin-')), 'relay.db'));
    let now = 1_000_000;
    const store = new OrderStore(db);
    const pin = new ManagerPin(new SqliteCounter(db, store).pin, new SqliteAudit(store), { now: () => now, elevationMs: 60_000, lockMs: 600_000 });
    const terminals = new SqliteTerminals(db);
    const auth = new Authenticator(terminals);
    auth.elevations = (t, e) => pin.check(t, e);
    const token = await createTerminal(terminals, 'till-x', 'cashier');
    await pin.set('97531', 'boss');
    const { elevation } = await pin.unlock('till-x', '97531');
    await expect(auth.require(`Bearer ${token}`, 'manager', elevation)).resolves.toMatchObject({ name: 'till-x', role: 'manager', elevated: true });
    now += 59_999;
    expect(await pin.check('till-x', elevation)).toBe(true);
    now += 1;
    await expect(auth.require(`Bearer ${token}`, 'manager', elevation)).rejects.toThrow(/manager terminal/);
    for (let i = 0; i < 5; i++) await pin.unlock('till-x', '11111').catch(() => undefined);
    await expect(pin.unlock('till-x', '97531')).rejects.toMatchObject({ code: 'PIN_LOCKED', status: 423 });
    now += 600_000;
    await expect(pin.unlock('till-x', '11111')).rejects.toMatchObject({ code: 'WRONG_PIN', extra: { tries_left: 4 } });
    expect((await pin.unlock('till-x', '97531')).elevation).toBeTruthy();
    // Setting a new PIN ends every elevation.
    const again = await pin.unlock('till-x', '97531');
    await pin.set('24680', 'boss');
    expect(await pin.check('till-x', again.elevation)).toBe(false);
    db.close();
  });
});
