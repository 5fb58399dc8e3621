import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRelayConfig, ConfigError } from '../../shared/relay/config';
import { newCombineOutTradeNo, subOutTradeNo, ORDER_NO } from '../../shared/relay/ids';
import { validateCreateOrder } from '../../shared/relay/validate';
import { openDb } from '../../shared/relay/db';
import { openSqliteStore } from '../../shared/relay/sqlite/index';
import { Authenticator, createTerminal, hashToken } from '../../shared/relay/auth';
import { OrderStore } from '../../shared/relay/store';
import { checkResult, combinedState } from '../../shared/relay/orders';
import { validateBillDate } from '../../shared/relay/bills';
import { RelayError } from '../../shared/relay/errors';
import { startCheckpointer } from '../../shared/relay/checkpoint';
import { statSync } from 'node:fs';

const baseEnv = { WECHATPAY_CREDENTIALS_DIR: '/tmp/creds', RELAY_PUBLIC_URL: 'http://127.0.0.1:1' };

describe('relay config', () => {
  it('applies the contract defaults', () => {
    const c = loadRelayConfig(baseEnv);
    expect(c).toMatchObject({ host: '127.0.0.1', port: 8787, dbPath: 'data/relay.db', queryAfterSeconds: 30, closeMinAgeSeconds: 300, baseUrl: 'https://api.mch.weixin.qq.com' });
  });
  it.each([
    [{ RELAY_PUBLIC_URL: 'http://x' }, 'WECHATPAY_CREDENTIALS_DIR'],
    [{ WECHATPAY_CREDENTIALS_DIR: '/x' }, 'RELAY_PUBLIC_URL'],
    [{ ...baseEnv, RELAY_PORT: '70000' }, 'RELAY_PORT'],
    [{ ...baseEnv, RELAY_PORT: 'abc' }, 'RELAY_PORT'],
    [{ ...baseEnv, RELAY_QUERY_AFTER_SECONDS: '-1' }, 'RELAY_QUERY_AFTER_SECONDS'],
    [{ ...baseEnv, WECHATPAY_BASE_URL: 'ftp://x' }, 'WECHATPAY_BASE_URL'],
    [{ ...baseEnv, RELAY_PUBLIC_URL: 'http://x/?a=1' }, 'RELAY_PUBLIC_URL'],
  ])('names the bad setting %#', (env, name) => {
    try {
      loadRelayConfig(env);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).setting).toBe(name);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});

describe('order numbers', () => {
  it('are unique, time-sortable and URL-safe', () => {
    const a = Array.from({ length: 2000 }, (_, i) => newCombineOutTradeNo(1_700_000_000_000 + Math.floor(i / 10)));
    expect(new Set(a).size).toBe(a.length);
    for (const n of a) expect(n).toMatch(ORDER_NO);
    const stems = a.map((n) => n.slice(0, 10));
    expect([...stems].sort()).toEqual(stems);
    const sub = subOutTradeNo(a[0]!, 9);
    expect(sub).toMatch(ORDER_NO);
    expect(sub.endsWith('10')).toBe(true);
  });
});

describe('create-order validation', () => {
  const allowed = new Set(['1900000101', '1900000102']);
  const ok = { sub_orders: [{ mchid: '1900000101', description: '午餐', amount: 100 }, { mchid: '1900000102', description: '饮品', amount: 1 }] };
  const bad = (body: unknown): string => {
    try {
      validateCreateOrder(body, allowed, 30);
    } catch (err) {
      return (err as RelayError).extra.field as string;
    }
    throw new Error('accepted');
  };
  it('accepts a good order and defaults expiry', () => {
    expect(validateCreateOrder(ok, allowed, 30).expire_minutes).toBe(30);
  });
  it('names the field at fault', () => {
    expect(bad({ sub_orders: [] })).toBe('sub_orders');
    expect(validateCreateOrder({ sub_orders: [ok.sub_orders[0]] }, allowed, 30).sub_orders).toHaveLength(1);
    expect(bad({ sub_orders: Array(11).fill(ok.sub_orders[0]) })).toBe('sub_orders');
    expect(bad({ sub_orders: [ok.sub_orders[0], { ...ok.sub_orders[1], mchid: '999' }] })).toBe('sub_orders[1].mchid');
    expect(bad({ sub_orders: [ok.sub_orders[0], { ...ok.sub_orders[1], amount: 1.5 }] })).toBe('sub_orders[1].amount');
    expect(bad({ sub_orders: [ok.sub_orders[0], { ...ok.sub_orders[1], amount: 0 }] })).toBe('sub_orders[1].amount');
    expect(bad({ sub_orders: [ok.sub_orders[0], { ...ok.sub_orders[1], amount: '100' }] })).toBe('sub_orders[1].amount');
    // 43 CJK characters = 129 UTF-8 bytes > 127
    expect(bad({ sub_orders: [{ ...ok.sub_orders[0], description: '饭'.repeat(43) }, ok.sub_orders[1]] })).toBe('sub_orders[0].description');
    expect(bad({ sub_orders: [{ ...ok.sub_orders[0], description: 'ok 😀' }, ok.sub_orders[1]] })).toBe('sub_orders[0].description');
    expect(bad({ ...ok, expire_minutes: 0 })).toBe('expire_minutes');
    expect(bad([])).toBe('body');
  });
});

describe('terminals and tokens', () => {
  it('stores only a hash and checks roles', async () => {
    const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'relay-')), 'r.db'), { checkpoints: false });
    const db = store.db;
    const token = await createTerminal(store.terminals, 'till-1', 'cashier');
    const mtoken = await createTerminal(store.terminals, 'boss', 'manager');
    const stored = db.prepare('SELECT token_hash FROM terminals WHERE name = ?').get('till-1') as { token_hash: string };
    expect(stored.token_hash).toBe(hashToken(token));
    expect(JSON.stringify(db.prepare('SELECT * FROM terminals').all())).not.toContain(token);
    const auth = new Authenticator(store.terminals);
    expect(await auth.identify(`Bearer ${token}`)).toEqual({ name: 'till-1', role: 'cashier' });
    expect(await auth.identify(`Bearer ${token}x`)).toBeNull();
    await expect(auth.require(`Bearer ${token}`, 'manager')).rejects.toThrow(/manager/);
    expect((await auth.require(`Bearer ${mtoken}`, 'cashier')).role).toBe('manager');
    await expect(createTerminal(store.terminals, 'till-1', 'cashier')).rejects.toThrow(/exists/);
    await expect(createTerminal(store.terminals, 'x', 'admin')).rejects.toThrow(/role/);
    expect((db.pragma('journal_mode') as { journal_mode: string }[])[0]!.journal_mode).toBe('wal');
    await store.close();
  });
});

describe('order store', () => {
  it('changes state once from a non-final state and feeds the cursor', () => {
    const db = openDb(join(mkdtempSync(join(tmpdir(), 'relay-')), 'r.db'));
    const store = new OrderStore(db);
    const seen: number[] = [];
    store.onChange((c) => seen.push(c.cursor));
    const now = Date.now();
    const no = newCombineOutTradeNo(now);
    store.insert({
      row: { combine_out_trade_no: no, state: 'NOTPAY', total_amount: 300, description: null, created_at: new Date(now).toISOString(), created_ms: now,
        expires_at: new Date(now + 60_000).toISOString(), expires_ms: now + 60_000, updated_ms: now, terminal: 't', creation: 'PENDING',
        idempotency_key: null, request_hash: 'h', request_json: '{}', watch: 1, next_check_ms: now },
      subs: [0, 1].map((idx) => ({ out_trade_no: subOutTradeNo(no, idx), combine_out_trade_no: no, idx, mchid: '1900000101', description: 'd', amount: 100 + idx * 100, attach: null })),
    });
    store.markCreated(no, 'weixin://wxpay/bizpayurl?pr=x');
    expect(store.transition(no, { state: 'SUCCESS' })).toBe(true);
    expect(store.transition(no, { state: 'SUCCESS' })).toBe(false);
    expect(store.transition(no, { state: 'CLOSED' })).toBe(false);
    const o = store.get(no)!;
    expect(o.state).toBe('SUCCESS');
    expect(o.sub_orders.map((s) => s.state)).toEqual(['SUCCESS', 'SUCCESS']);
    expect(seen.length).toBe(2);
    expect(store.changesSince(seen[0]!)!.map((c) => c.order.combine_out_trade_no)).toEqual([no]);
    expect(store.changesSince(seen[1]!)).toEqual([]);
    expect(store.changesSince(999)).toBeNull();
    // The anti-fake-notice check
    const subs = store.subRows(no);
    const result = {
      combine_appid: 'wx', combine_mchid: 'M', combine_out_trade_no: no,
      sub_orders: subs.map((s) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no, trade_state: 'SUCCESS' as const, amount: { total_amount: s.amount } })),
    };
    expect(checkResult({ mchid: 'M', appid: 'wx' }, subs, result).ok).toBe(true);
    expect(combinedState(result)).toBe('SUCCESS');
    const wrong = structuredClone(result);
    wrong.sub_orders[1]!.amount.total_amount = 1;
    expect(checkResult({ mchid: 'M', appid: 'wx' }, subs, wrong)).toMatchObject({ ok: false, kind: 'AMOUNT_MISMATCH' });
    expect(checkResult({ mchid: 'OTHER', appid: 'wx' }, subs, result)).toMatchObject({ ok: false, kind: 'MCHID_MISMATCH' });
    expect(checkResult({ mchid: 'M', appid: 'wx' }, subs, { ...result, sub_orders: result.sub_orders.slice(0, 1) })).toMatchObject({ ok: false });
    db.close();
  });
  it('refuses bad bill dates naming the field', () => {
    expect(validateBillDate({ bill_date: '2026-02-28' })).toBe('2026-02-28');
    expect(() => validateBillDate({ bill_date: '2026-02-30' })).toThrow(/bill_date/);
    expect(() => validateBillDate({ bill_date: '2999-01-01' })).toThrow(/future/);
    expect(() => validateBillDate({})).toThrow(/bill_date/);
  });
});

describe('WAL checkpointer', () => {
  it('moves committed pages into the database file from its worker thread', async () => {
    const p = join(mkdtempSync(join(tmpdir(), 'relay-')), 'cp.db');
    const db = openDb(p);
    const errors: string[] = [];
    const cp = startCheckpointer(p, 50, (m) => errors.push(m));
    db.exec('CREATE TABLE t (x)');
    const ins = db.prepare('INSERT INTO t VALUES (randomblob(1000))');
    db.transaction(() => { for (let i = 0; i < 500; i++) ins.run(); })();
    const before = statSync(p).size;
    // Wait for the checkpoint itself (the file growing), not for a fixed time.
    const deadline = Date.now() + 10_000;
    while (statSync(p).size <= before + 400_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(p).size).toBeGreaterThan(before + 400_000);
    await cp.stop();
    expect(errors).toEqual([]);
    db.close();
  });
});

describe('merchant keys missing', () => {
  it('a participant without keys becomes 409 MERCHANT_KEYS_MISSING naming the mchid', async () => {
    const { upstreamError } = await import('../../shared/relay/upstream');
    const { MerchantKeysMissingError } = await import('../../shared/wechatpay/errors');
    const e = upstreamError(new MerchantKeysMissingError('1900000112'));
    expect(e.status).toBe(409);
    expect(e.body()).toMatchObject({ code: 'MERCHANT_KEYS_MISSING', mchid: '1900000112' });
    expect(e.message).toContain('merchants/1900000112/');
  });
});
