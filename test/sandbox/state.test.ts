/** The state database: owner-only files, an old state.json imported once (or refused clearly when damaged). */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSandbox, startSandbox } from '../../shared/sandbox';
import { combineRequest, send, sandboxGet, sandboxPost, setup } from './helpers';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('sandbox state', () => {
  it('keeps state in state.db (owner-only, with its -wal and -shm) across restarts', async () => {
    const env = await setup();
    try {
      const req = combineRequest(env);
      const c = await send(env, 'POST', '/v3/combine-transactions/native', req);
      await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false });
      await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 42 });
      const db = join(env.dir, 'sandbox', 'state.db');
      for (const f of [db, `${db}-wal`, `${db}-shm`]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
      expect(existsSync(join(env.dir, 'sandbox', 'state.json'))).toBe(false);
      await env.restart();
      expect((await sandboxGet(env, '/sandbox/control/clock')).offset_seconds).toBe(42);
      const q = await send(env, 'GET', `/v3/combine-transactions/out-trade-no/${req.combine_out_trade_no}`);
      expect(q.json.sub_orders.map((s: any) => s.trade_state)).toEqual(['SUCCESS', 'SUCCESS']);
      await expect(initSandbox(env.dir)).rejects.toMatchObject({ code: 'ALREADY_INITIALIZED' });
    } finally {
      await env.close();
    }
  });

  it('imports an old state.json once and renames it state.json.migrated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-state-'));
    dirs.push(dir);
    const init = await initSandbox(dir);
    const now = Date.now();
    const order = {
      combine_out_trade_no: 'OLDORDER0001',
      request: {
        combine_appid: init.appid, combine_mchid: init.mchid, combine_out_trade_no: 'OLDORDER0001', notify_url: 'http://127.0.0.1:9/notify',
        sub_orders: init.participants.slice(0, 2).map((p, i) => ({ mchid: p.mchid, attach: 'a', amount: { total_amount: 100 + i, currency: 'CNY' }, out_trade_no: `OLDORDER0001${i}`, description: '旧订单' })),
      },
      fingerprint: 'x', created_at: now, expires_at: now + 3600_000, code_url: 'weixin://wxpay/bizpayurl/up?pr=old&groupid=00', code_url_issued_at: now,
      state: 'NOTPAY', sub_orders: [{ out_trade_no: 'OLDORDER00010' }, { out_trade_no: 'OLDORDER00011' }],
    };
    const legacy = join(dir, 'sandbox', 'state.json');
    writeFileSync(legacy, JSON.stringify({ version: 1, clock_offset_seconds: 7, orders: { OLDORDER0001: order }, pending: [], deliveries: [], bill_adjustments: [], bill_extras: [] }));
    const sb = await startSandbox({ dir });
    try {
      expect(existsSync(legacy)).toBe(false);
      expect(JSON.parse(readFileSync(`${legacy}.migrated`, 'utf8')).clock_offset_seconds).toBe(7);
      expect((await (await fetch(sb.url + '/sandbox/control/clock')).json()).offset_seconds).toBe(7);
      const orders = (await (await fetch(sb.url + '/sandbox/orders')).json()).orders;
      expect(orders.map((o: any) => o.combine_out_trade_no)).toEqual(['OLDORDER0001']);
      const paid = await fetch(sb.url + '/sandbox/pay', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code_url: order.code_url, notify: false }) });
      expect(paid.status).toBe(200);
    } finally {
      await sb.close();
    }
  });

  it('refuses a damaged state.json with its path, creating nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-state-'));
    dirs.push(dir);
    await initSandbox(dir);
    const legacy = join(dir, 'sandbox', 'state.json');
    writeFileSync(legacy, '{"version":1,"orders":');
    await expect(startSandbox({ dir })).rejects.toMatchObject({ code: 'STATE_INVALID', message: expect.stringContaining(legacy) });
    expect(existsSync(join(dir, 'sandbox', 'state.db'))).toBe(false);
    expect(existsSync(legacy)).toBe(true);
  });
});
