/**
 * Trade bill reconciliation against the real sandbox: every participant applies for its own bill
 * signed with its own keys (the sandbox's request log shows whose mchid and key serial signed
 * each bill request), in public-key mode, in certificate mode, and in a mixed setup with a
 * participant without keys (NO_KEYS, and ok false); in the mixed setup also notifications signed
 * by different merchants' keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Order, ReconciliationReport } from '../../shared/contracts/relay-api';
import { randomUUID } from 'node:crypto';
import { loadSandboxConfig } from '../../shared/sandbox/index';
import { defaultKey } from '../../shared/sandbox/auth';
import { encryptResource } from '../../shared/wechatpay/aead';
import { signBody } from '../../shared/wechatpay/sign';
import { beijingDate, formatBeijing } from '../../shared/wechatpay/time';
import { api, createOrder, EventsClient, pay, startEnv, until, type Env } from './env';

const state = async (env: Env, no: string) => (await api<Order>(env.relayUrl, 'GET', `/v1/orders/${no}`, env.cashier)).body.state;

/** Creates and pays `orders` (amounts per sub-merchant in sub_merchants order) and waits for SUCCESS. */
async function sellDay(env: Env, orders: number[][]): Promise<Order[]> {
  const out: Order[] = [];
  for (const amounts of orders) out.push(await createOrder(env, amounts));
  for (const o of out) await pay(env, o);
  for (const o of out) await until(async () => (await state(env, o.combine_out_trade_no)) === 'SUCCESS');
  return out;
}

/** Tomorrow 10:00 Beijing has passed for the simulator: today's bills are ready. */
const billsReady = (env: Env) => api(env.sandboxUrl, 'POST', '/sandbox/control/clock', null, { offset_seconds: 36 * 3600 });

/** The bill requests the sandbox authenticated, as [mchid, serial_no] pairs. */
async function billRequests(env: Env): Promise<string[]> {
  const r = await api<{ requests: { mchid: string; serial_no: string; authenticated: boolean; status: number }[] }>(env.sandboxUrl, 'GET', '/sandbox/requests?path=/v3/bill/tradebill', null);
  return r.body.requests.filter((q) => q.authenticated).map((q) => `${q.mchid}:${q.serial_no.toUpperCase()}`).sort();
}

/** `mchid:cert_serial` of each participant with keys, read from its own folder. */
function ownSerials(env: Env): string[] {
  return env.init.participants
    .filter((p) => p.dir !== null || p.mchid === env.init.mchid)
    .map((p) => {
      const dir = p.dir ?? join(env.config.credentialsDir);
      const m = JSON.parse(readFileSync(join(dir, 'merchant.json'), 'utf8')) as { mchid: string; cert_serial: string };
      return `${m.mchid}:${m.cert_serial.toUpperCase()}`;
    })
    .sort();
}

describe('trade bills, every participant with its own keys (public-key mode)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600 });
  });
  afterAll(async () => env?.close());

  it("fetches every participant's own bill, signed as itself, and reports injected mismatches", async () => {
    const today = beijingDate(Date.now());
    const [a, b, c] = await sellDay(env, [[1000, 2000], [1100, 2100], [1200, 2200]]);
    const d = await createOrder(env, [1300, 2300]);
    await pay(env, d, { notify: false }); // paid at WeChat, unknown to the relay
    expect(await state(env, d.combine_out_trade_no)).toBe('NOTPAY');
    const adj = (body: unknown) => api(env.sandboxUrl, 'POST', '/sandbox/control/bill-adjust', null, body);
    expect((await adj({ out_trade_no: b!.sub_orders[0]!.out_trade_no, amount: 1099 })).status).toBe(200);
    expect((await adj({ out_trade_no: c!.sub_orders[1]!.out_trade_no, drop: true })).status).toBe(200);
    expect((await adj({ extra: { mchid: a!.sub_orders[0]!.mchid, out_trade_no: 'SFOREIGN000001', amount: 555 } })).status).toBe(200);
    await billsReady(env);

    const ws = await EventsClient.connect(env, env.manager);
    const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(r.status).toBe(200);
    const rep = r.body;
    expect(rep.bill_date).toBe(today);
    expect(rep.ok).toBe(false);
    const kinds = rep.mismatches.map((m) => `${m.kind}:${m.out_trade_no}`).sort();
    expect(kinds).toEqual([
      `AMOUNT_MISMATCH:${b!.sub_orders[0]!.out_trade_no}`,
      `MISSING_IN_BILL:${c!.sub_orders[1]!.out_trade_no}`,
      `NOT_PAID_LOCALLY:${d.sub_orders[0]!.out_trade_no}`,
      `NOT_PAID_LOCALLY:${d.sub_orders[1]!.out_trade_no}`,
      'UNKNOWN_ORDER:SFOREIGN000001',
    ].sort());
    expect(rep.mismatch_count).toBe(5);
    expect(rep.mismatches_truncated).toBe(false);
    const amt = rep.mismatches.find((m) => m.kind === 'AMOUNT_MISMATCH')!;
    expect(amt).toMatchObject({ local_amount: 1100, bill_amount: 1099, combine_out_trade_no: b!.combine_out_trade_no });
    const [m0, m1, m2] = rep.merchants;
    expect(m0).toMatchObject({ status: 'OK', local_count: 3, local_amount: 1000 + 1100 + 1200, bill_count: 5, bill_amount: 1000 + 1099 + 1200 + 1300 + 555 });
    expect(m1).toMatchObject({ status: 'OK', local_count: 3, local_amount: 2000 + 2100 + 2200, bill_count: 3, bill_amount: 2000 + 2100 + 2300 });
    expect(m2!.status).toBe('NO_STATEMENT');
    expect(rep.merchants).toHaveLength(env.merchant.sub_merchants.length);
    // Each participant applied for its own bill with its own mchid and API key serial; nobody
    // applied on another's behalf (no sub_mchid anywhere).
    expect(await billRequests(env)).toEqual(ownSerials(env));
    const urls = (await api<{ requests: { url: string }[] }>(env.sandboxUrl, 'GET', '/sandbox/requests?path=/v3/bill/tradebill', null)).body.requests.map((q) => q.url);
    expect(urls.some((u) => u.includes('sub_mchid'))).toBe(false);
    // Progress was pushed while it ran.
    await ws.next((m) => m.type === 'bill.progress' && m.stage === 'done');
    expect(ws.messages.filter((m) => m.type === 'bill.progress').length).toBeGreaterThanOrEqual(env.merchant.sub_merchants.length);
    ws.close();
    // Bad input names the field.
    const bad = await api(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: '2026/01/01' });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('bill_date');
  });

});

describe('trade bills, bounded report', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, relayEnv: { RELAY_BILL_MAX_MISMATCHES: '2' } });
  });
  afterAll(async () => env?.close());

  it('keeps at most RELAY_BILL_MAX_MISMATCHES mismatches but counts them all', async () => {
    const today = beijingDate(Date.now());
    const m = env.merchant.sub_merchants[0]!.mchid;
    const adj = (body: unknown) => api(env.sandboxUrl, 'POST', '/sandbox/control/bill-adjust', null, body);
    for (let i = 0; i < 5; i++) expect((await adj({ extra: { mchid: m, out_trade_no: `SFOREIGN00000${i}`, amount: 100 + i } })).status).toBe(200);
    await billsReady(env);
    const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(r.status).toBe(200);
    expect(r.body.mismatches).toHaveLength(2);
    expect(r.body.mismatch_count).toBe(5);
    expect(r.body.mismatches_truncated).toBe(true);
    expect(r.body.merchants[0]).toMatchObject({ bill_count: 5, bill_amount: 510 });
    expect(r.body.ok).toBe(false);
  });
});

describe('trade bills, every merchant in platform-certificate mode', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, init: { certificates: true } });
  });
  afterAll(async () => env?.close());

  it('a clean day of combined sales reconciles per participant: ok only when every merchant was compared', async () => {
    const today = beijingDate(Date.now());
    const n = env.merchant.sub_merchants.length;
    // Every participant sells: amounts per sub-merchant index.
    await sellDay(env, [Array.from({ length: n }, (_, i) => 100 + i), Array.from({ length: n }, (_, i) => 200 + i)]);
    // Before the bills exist: NOT_READY is not "一致".
    const early = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(early.status).toBe(200);
    expect(early.body.merchants.map((m) => m.status)).toEqual(Array(n).fill('NOT_READY'));
    expect(early.body.mismatch_count).toBe(0);
    expect(early.body.ok).toBe(false);

    await billsReady(env);
    const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(r.status).toBe(200);
    expect(r.body.mismatches).toEqual([]);
    r.body.merchants.forEach((m, i) => expect(m).toMatchObject({ status: 'OK', bill_count: 2, bill_amount: 300 + 2 * i, local_count: 2, local_amount: 300 + 2 * i }));
    expect(r.body.ok).toBe(true);
    expect(new Set(await billRequests(env))).toEqual(new Set(ownSerials(env)));
  });
});

describe('trade bills, mixed setup: public-key, certificate and no keys', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv({ queryAfterSeconds: 3600, init: { modes: { initiator: 'public_key', participants: ['public_key', 'certificates', 'none', 'certificates'] } } });
  });
  afterAll(async () => env?.close());

  it('sells with all four, reconciles the three with keys, reports NO_KEYS for the one without a folder', async () => {
    const today = beijingDate(Date.now());
    const [noKeys] = env.init.participants.filter((p) => p.mode === 'none');
    expect(noKeys).toBeDefined();
    // The participant without keys still sells in combined orders.
    const listed = await api<{ sub_merchants: { mchid: string; has_keys: boolean }[] }>(env.relayUrl, 'GET', '/v1/merchants', env.cashier);
    expect(listed.body.sub_merchants.map((m) => m.has_keys)).toEqual([true, true, false, true]);
    const orders = await sellDay(env, [[500, 600, 700, 800], [510, 610, 710, 810]]);
    expect(orders.every((o) => o.sub_orders.some((s) => s.mchid === noKeys!.mchid))).toBe(true);
    await billsReady(env);
    const r = await api<ReconciliationReport>(env.relayUrl, 'POST', '/v1/bills/trade', env.manager, { bill_date: today });
    expect(r.status).toBe(200);
    expect(r.body.merchants.map((m) => m.status)).toEqual(['OK', 'OK', 'NO_KEYS', 'OK']);
    const nk = r.body.merchants[2]!;
    expect(nk).toMatchObject({ mchid: noKeys!.mchid, bill_count: 0, local_count: 2, local_amount: 700 + 710 });
    expect(nk.error).toContain('MERCHANT_KEYS_MISSING');
    expect(r.body.mismatches).toEqual([]);
    // Nothing differed, but one merchant could not be compared: not "一致".
    expect(r.body.ok).toBe(false);
    // The sandbox saw exactly the three participants with keys, each signing as itself.
    const seen = await billRequests(env);
    expect(new Set(seen)).toEqual(new Set(ownSerials(env)));
    expect(seen.some((s) => s.startsWith(`${noKeys!.mchid}:`))).toBe(false);
  });

  it("notifications: verified with the key of the merchant that signed (any mode) and refused when about another merchant", async () => {
    const cfg = loadSandboxConfig(env.init.sandboxDir);
    const post = (signer: string, about: string) => {
      const no = `C${Date.now()}${Math.floor(Math.random() * 1e6)}`;
      const plain = JSON.stringify({
        combine_appid: env.init.appid, combine_mchid: about, combine_out_trade_no: no, combine_payer_info: { openid: 'oTest' },
        sub_orders: [{ mchid: about, trade_type: 'NATIVE', trade_state: 'SUCCESS', transaction_id: '4200000001', out_trade_no: `${no}S0`, success_time: formatBeijing(Date.now()), amount: { total_amount: 100, currency: 'CNY' } }],
      });
      const m = cfg.keys.get(signer)!;
      const body = JSON.stringify({ id: randomUUID(), create_time: formatBeijing(Date.now()), resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功', resource: encryptResource(plain, m.apiV3Key, 'transaction') });
      const k = defaultKey(m);
      return api(env.relayUrl, 'POST', '/wechatpay/notify', null, body, { ...(signBody(k.key, k.serial, body) as unknown as Record<string, string>) });
    };
    const [pub, cert] = env.init.participants;
    expect([pub!.mode, cert!.mode]).toEqual(['public_key', 'certificates']);
    // Signed with a certificate-mode participant's platform certificate (a serial the relay learns
    // by downloading that merchant's certificates), decrypted with its APIv3 key: accepted as far
    // as the keys go, then refused for what it says (no such order here).
    const own = await post(cert!.mchid, cert!.mchid);
    expect(own.status).toBe(404);
    // Signed and encrypted by one participant, claiming to be about the initiator: refused and alerted.
    const cross = await post(pub!.mchid, env.init.mchid);
    expect(cross.status).toBe(400);
    expect(cross.body.message).toContain('MERCHANT_MISMATCH');
    const alerts = await api<{ alerts: { kind: string; message: string }[] }>(env.relayUrl, 'GET', '/v1/alerts', env.manager);
    expect(alerts.body.alerts.some((a) => a.kind === 'MERCHANT_MISMATCH' && a.message.includes(pub!.mchid))).toBe(true);
  });
});
