/** Combine Native business rules, response signing in both key modes, certificates, faults. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { decryptResource } from '../../shared/wechatpay/aead';
import { formatBeijing } from '../../shared/wechatpay/time';
import { combineRequest, orderNo, sandboxGet, sandboxPost, send, setup, type Env } from './helpers';

const CREATE = '/v3/combine-transactions/native';
const Q = (no: string) => `/v3/combine-transactions/out-trade-no/${no}`;
const CLOSE = (no: string) => `/v3/combine-transactions/out-trade-no/${no}/close`;
const closeBody = (env: Env, req: ReturnType<typeof combineRequest>) => ({
  combine_appid: env.creds.appid,
  sub_orders: req.sub_orders.map((s) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no })),
});

async function shiftClock(env: Env, seconds: number) {
  const r = await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: seconds });
  expect(r.status).toBe(200);
}

describe('public-key mode', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup();
  });
  afterAll(() => env.close());

  it('creates, queries (§4.2 shape) and signs every answer with the public key', async () => {
    const req = combineRequest(env, { scene_info: { device_id: 'POS0001', payer_client_ip: '127.0.0.1' } });
    const c = await send(env, 'POST', CREATE, req);
    expect(c.status).toBe(200);
    const h = await env.verifier.verify(Object.fromEntries(c.headers.entries()), c.raw);
    expect(h.serial).toBe(env.creds.wechatpayPublicKey!.id);
    const q = await send(env, 'GET', Q(req.combine_out_trade_no));
    expect(q.status).toBe(200);
    await env.verifier.verify(Object.fromEntries(q.headers.entries()), q.raw);
    expect(q.json).toMatchObject({
      combine_appid: env.creds.appid,
      combine_mchid: env.creds.mchid,
      combine_out_trade_no: req.combine_out_trade_no,
      scene_info: { device_id: 'POS0001' },
      sub_orders: [
        { mchid: req.sub_orders[0]!.mchid, trade_state: 'NOTPAY', trade_type: 'NATIVE', attach: req.combine_out_trade_no, out_trade_no: req.sub_orders[0]!.out_trade_no, amount: { total_amount: 3800, currency: 'CNY' } },
        { mchid: req.sub_orders[1]!.mchid, trade_state: 'NOTPAY', amount: { total_amount: 1250 } },
      ],
    });
    expect(q.json.sub_orders[0].transaction_id).toBeUndefined();

    const pay = await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false });
    expect(pay.json.state).toBe('SUCCESS');
    const q2 = await send(env, 'GET', Q(req.combine_out_trade_no));
    expect(q2.json.combine_payer_info.openid).toMatch(/^o/);
    for (const [i, s] of q2.json.sub_orders.entries()) {
      expect(s.trade_state).toBe('SUCCESS');
      expect(s.transaction_id).toBe(pay.json.sub_orders[i].transaction_id);
      expect(s.transaction_id).toMatch(/^\d{28}$/);
      expect(s.success_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$/);
      expect(s.amount.payer_amount).toBe(s.amount.total_amount);
    }
  });

  it('validates fields with PARAM_ERROR naming the field as a JSON pointer', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ sub_orders: [combineRequest(env).sub_orders[0]] }, '/sub_orders'],
      [{ sub_orders: Array.from({ length: 11 }, (_, i) => ({ ...combineRequest(env).sub_orders[0], out_trade_no: `S${i}XYZ123` })) }, '/sub_orders'],
      [{ combine_out_trade_no: 'abc' }, '/combine_out_trade_no'],
      [{ combine_out_trade_no: 'bad@number01' }, '/combine_out_trade_no'],
      [{ notify_url: 'http://127.0.0.1/notify?x=1' }, '/notify_url'],
      [{ notify_url: 'not a url' }, '/notify_url'],
      [{ time_expire: '2026-01-01 10:00:00' }, '/time_expire'],
      [{ scene_info: { device_id: 'POS0001' } }, '/scene_info/payer_client_ip'],
    ];
    for (const [over, field] of cases) {
      const res = await send(env, 'POST', CREATE, { ...combineRequest(env), ...over });
      expect(res.status, field).toBe(400);
      expect(res.json.code).toBe('PARAM_ERROR');
      expect(res.json.detail.field).toBe(field);
    }
    const subCases: [(s: any) => void, string][] = [
      [(s) => { s.amount.total_amount = 0; }, '/sub_orders/1/amount/total_amount'],
      [(s) => { s.amount.total_amount = 12.5; }, '/sub_orders/1/amount/total_amount'],
      [(s) => { s.amount.currency = 'USD'; }, '/sub_orders/1/amount/currency'],
      [(s) => { delete s.attach; }, '/sub_orders/1/attach'],
      [(s) => { s.attach = 'x'.repeat(129); }, '/sub_orders/1/attach'],
      [(s) => { s.description = 'd'.repeat(128); }, '/sub_orders/1/description'],
      [(s) => { s.description = '奶茶🍵'; }, '/sub_orders/1/description'],
      [(s) => { s.out_trade_no = s.__first; }, '/sub_orders/1/out_trade_no'],
    ];
    for (const [mutate, field] of subCases) {
      const req = combineRequest(env);
      Object.defineProperty(req.sub_orders[1]!, '__first', { value: req.sub_orders[0]!.out_trade_no, enumerable: false });
      mutate(req.sub_orders[1]);
      const res = await send(env, 'POST', CREATE, req);
      expect(res.json.detail?.field, field).toBe(field);
      expect(res.status).toBe(400);
    }
    const notJson = await send(env, 'POST', CREATE, '{"combine_appid":');
    expect(notJson.json.code).toBe('PARAM_ERROR');
  });

  it('refuses foreign appid, foreign sub-merchant and another combine_mchid', async () => {
    let res = await send(env, 'POST', CREATE, combineRequest(env, { combine_appid: 'wx0000000000000000' }));
    expect([res.status, res.json.code]).toEqual([400, 'APPID_MCHID_NOT_MATCH']);
    const req = combineRequest(env);
    req.sub_orders[1]!.mchid = '1600000000';
    res = await send(env, 'POST', CREATE, req);
    expect([res.status, res.json.code, res.json.detail.field]).toEqual([400, 'APPID_MCHID_NOT_MATCH', '/sub_orders/1/mchid']);
    res = await send(env, 'POST', CREATE, combineRequest(env, { combine_mchid: '1900000001' }));
    expect([res.status, res.json.detail.field]).toEqual([400, '/combine_mchid']);
  });

  it('re-request: same content (any key order) → a new code_url, the old one no longer pays; different content → INVALID_REQUEST; reused sub number → OUT_TRADE_NO_USED', async () => {
    const req = combineRequest(env);
    const a = await send(env, 'POST', CREATE, req);
    const reordered = Object.fromEntries(Object.entries(req).reverse());
    const b = await send(env, 'POST', CREATE, reordered);
    expect(b.status).toBe(200);
    expect(b.json.code_url).toMatch(/^weixin:\/\//);
    expect(b.json.code_url).not.toBe(a.json.code_url);
    const old = await sandboxPost(env, '/sandbox/pay', { code_url: a.json.code_url, notify: false });
    expect([old.status, old.json.code]).toEqual([400, 'CODE_URL_EXPIRED']);
    expect((await send(env, 'GET', Q(req.combine_out_trade_no))).json.sub_orders[0].trade_state).toBe('NOTPAY');
    const changed = structuredClone(req);
    changed.sub_orders[0]!.amount.total_amount += 1;
    const c = await send(env, 'POST', CREATE, changed);
    expect([c.status, c.json.code]).toEqual([400, 'INVALID_REQUEST']);
    const other = combineRequest(env);
    other.sub_orders[0]!.out_trade_no = req.sub_orders[0]!.out_trade_no;
    const d = await send(env, 'POST', CREATE, other);
    expect([d.status, d.json.code]).toEqual([403, 'OUT_TRADE_NO_USED']);
  });

  it('close: too early refused, wrong sub-orders refused, then 204 signed with empty body; closed order cannot be paid or re-created', async () => {
    const req = combineRequest(env);
    const created = await send(env, 'POST', CREATE, req);
    let res = await send(env, 'POST', CLOSE(req.combine_out_trade_no), closeBody(env, req));
    expect([res.status, res.json.code]).toEqual([400, 'INVALID_REQUEST']);
    expect(res.json.message).toMatch(/5分钟|300s/);
    await shiftClock(env, 301);
    try {
      const partial = closeBody(env, req);
      partial.sub_orders.pop();
      res = await send(env, 'POST', CLOSE(req.combine_out_trade_no), partial);
      expect([res.status, res.json.code]).toEqual([400, 'INVALID_REQUEST']);
      res = await send(env, 'POST', CLOSE('NOSUCHORDER01'), closeBody(env, req));
      expect([res.status, res.json.code]).toEqual([404, 'ORDER_NOT_EXIST']);
      res = await send(env, 'POST', CLOSE(req.combine_out_trade_no), closeBody(env, req));
      expect(res.status).toBe(204);
      expect(res.raw.length).toBe(0);
      await env.verifier.verify(Object.fromEntries(res.headers.entries()), res.raw);
      res = await send(env, 'POST', CLOSE(req.combine_out_trade_no), closeBody(env, req));
      expect([res.status, res.json.code]).toEqual([400, 'ORDER_CLOSED']);
      const pay = await sandboxPost(env, '/sandbox/pay', { code_url: created.json.code_url });
      expect([pay.status, pay.json.code]).toEqual([400, 'ORDER_CLOSED']);
      res = await send(env, 'POST', CREATE, req);
      expect([res.status, res.json.code]).toEqual([400, 'ORDER_CLOSED']);
      expect((await send(env, 'GET', Q(req.combine_out_trade_no))).json.sub_orders[0].trade_state).toBe('CLOSED');

      // Paid orders cannot be closed; USERPAYING answers 202.
      const paidReq = combineRequest(env);
      const p = await send(env, 'POST', CREATE, paidReq);
      await sandboxPost(env, '/sandbox/pay', { code_url: p.json.code_url, outcome: 'USERPAYING' });
      expect((await send(env, 'GET', Q(paidReq.combine_out_trade_no))).json.sub_orders[0].trade_state).toBe('USERPAYING');
      await shiftClock(env, 602);
      res = await send(env, 'POST', CLOSE(paidReq.combine_out_trade_no), closeBody(env, paidReq));
      expect([res.status, res.json.code]).toEqual([202, 'USER_PAYING']);
      await env.verifier.verify(Object.fromEntries(res.headers.entries()), res.raw);
      await sandboxPost(env, '/sandbox/pay', { code_url: p.json.code_url, outcome: 'SUCCESS', notify: false });
      res = await send(env, 'POST', CLOSE(paidReq.combine_out_trade_no), closeBody(env, paidReq));
      expect([res.status, res.json.code]).toEqual([400, 'ORDER_PAID']);
      res = await send(env, 'POST', CREATE, paidReq);
      expect([res.status, res.json.code]).toEqual([400, 'ORDER_PAID']);
      const again = await sandboxPost(env, '/sandbox/pay', { code_url: p.json.code_url });
      expect([again.status, again.json.code]).toEqual([400, 'ORDER_PAID']);
    } finally {
      await shiftClock(env, 0);
    }
  });

  it('honours time_expire: no payment after it, yet the order stays NOTPAY until the merchant closes it', async () => {
    const req = combineRequest(env, { time_expire: formatBeijing(Date.now() + 120_000) });
    const c = await send(env, 'POST', CREATE, req);
    await shiftClock(env, 181);
    try {
      const pay = await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url });
      expect([pay.status, pay.json.code]).toEqual([400, 'ORDER_EXPIRED']);
      expect(pay.json.message).toMatch(/最晚支付/);
      expect((await send(env, 'GET', Q(req.combine_out_trade_no))).json.sub_orders.map((s: any) => s.trade_state)).toEqual(['NOTPAY', 'NOTPAY']);
      const listed = (await sandboxGet(env, '/sandbox/orders')).orders.find((o: any) => o.combine_out_trade_no === req.combine_out_trade_no);
      expect([listed.state, listed.expired]).toEqual(['NOTPAY', true]);
      await shiftClock(env, 301);
      const closed = await send(env, 'POST', CLOSE(req.combine_out_trade_no), closeBody(env, req));
      expect(closed.status).toBe(204);
      expect((await send(env, 'GET', Q(req.combine_out_trade_no))).json.sub_orders[1].trade_state).toBe('CLOSED');
      expect((await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url })).json.code).toBe('ORDER_CLOSED');
    } finally {
      await shiftClock(env, 0);
    }
  });

  it('PAYERROR leaves the order payable later; unknown code_url is refused', async () => {
    const req = combineRequest(env);
    const c = await send(env, 'POST', CREATE, req);
    expect((await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, outcome: 'PAYERROR' })).json.state).toBe('PAYERROR');
    expect((await send(env, 'GET', Q(req.combine_out_trade_no))).json.sub_orders[0].trade_state).toBe('PAYERROR');
    expect((await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false })).json.state).toBe('SUCCESS');
    const bad = await sandboxPost(env, '/sandbox/pay', { code_url: 'weixin://wxpay/bizpayurl/up?pr=nope&groupid=00' });
    expect(bad.status).toBe(404);
  });

  it('code_url lasts 2 h: an identical re-request then issues a new one, the old one no longer pays', async () => {
    const req = combineRequest(env);
    const first = (await send(env, 'POST', CREATE, req)).json.code_url;
    await shiftClock(env, 2 * 3600 + 1);
    try {
      const late = await sandboxPost(env, '/sandbox/pay', { code_url: first });
      expect([late.status, late.json.code]).toEqual([400, 'CODE_URL_EXPIRED']);
      const second = (await send(env, 'POST', CREATE, req)).json.code_url;
      expect(second).not.toBe(first);
      expect((await sandboxPost(env, '/sandbox/pay', { code_url: first })).json.code).toBe('CODE_URL_EXPIRED');
      expect((await sandboxPost(env, '/sandbox/pay', { code_url: second, notify: false })).json.state).toBe('SUCCESS');
    } finally {
      await shiftClock(env, 0);
    }
  });

  it('answers unknown endpoints 404, wrong methods 405, non-JSON posts and oversized bodies with errors', async () => {
    expect((await send(env, 'GET', '/v3/pay/transactions/jsapi')).status).toBe(404);
    expect((await send(env, 'GET', '/v3/pay/transactions/native')).status).toBe(405);
    expect((await send(env, 'GET', CREATE)).status).toBe(405);
    const noCt = await send(env, 'POST', CREATE, combineRequest(env), { omit: ['Content-Type'] });
    expect([noCt.status, noCt.json.code]).toEqual([400, 'INVALID_REQUEST']);
    const huge = await send(env, 'POST', CREATE, { pad: 'x'.repeat(300 * 1024) });
    expect(huge.status).toBe(413);
    const form = await fetch(env.url + '/sandbox/pay', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'code_url=x' });
    expect(form.status).toBe(415);
  });

  it('a path with broken percent-encoding is a 400 PARAM_ERROR, not a retryable 500', async () => {
    const q = await send(env, 'GET', '/v3/combine-transactions/out-trade-no/C%ZZ123456');
    expect([q.status, q.json.code]).toEqual([400, 'PARAM_ERROR']);
    const c = await send(env, 'POST', '/v3/combine-transactions/out-trade-no/C%E4123456/close', { combine_appid: env.creds.appid, sub_orders: [] });
    expect([c.status, c.json.code]).toEqual([400, 'PARAM_ERROR']);
  });

  it('an absurd clock offset is refused, not stored (it would break every later answer)', async () => {
    for (const offset_seconds of [1e20, -1e20]) {
      const r = await fetch(env.url + '/sandbox/control/clock', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ offset_seconds }) });
      expect(r.status).toBe(400);
      expect((await r.json()).code).toBe('PARAM_ERROR');
    }
    expect((await fetch(env.url + '/sandbox')).status).toBe(200);
    expect((await send(env, 'POST', CREATE, combineRequest(env))).status).toBe(200);
  });

  it('/v3/certificates is RESOURCE_NOT_EXISTS for a public-key merchant', async () => {
    const res = await send(env, 'GET', '/v3/certificates');
    expect([res.status, res.json.code]).toEqual([404, 'RESOURCE_NOT_EXISTS']);
  });

  it('injects faults: control endpoint (counted, by path) and per-request header', async () => {
    const req = combineRequest(env);
    expect((await sandboxPost(env, '/sandbox/control/faults', { path: '/v3/combine-transactions/native', kind: 'SYSTEM_ERROR', count: 2 })).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const r = await send(env, 'POST', CREATE, req);
      expect([r.status, r.json.code]).toEqual([500, 'SYSTEM_ERROR']);
    }
    // Faults fire before the order exists: the retry creates it.
    expect((await send(env, 'POST', CREATE, req)).status).toBe(200);
    const limited = await send(env, 'GET', Q(req.combine_out_trade_no), undefined, { headers: { 'X-Sandbox-Fault': 'FREQUENCY_LIMITED' } });
    expect([limited.status, limited.json.code]).toEqual([429, 'FREQUENCY_LIMITED']);
    const bad = await send(env, 'GET', Q(req.combine_out_trade_no), undefined, { headers: { 'X-Sandbox-Fault': 'BAD_SIGNATURE' } });
    expect(bad.status).toBe(200);
    await expect(env.verifier.verify(Object.fromEntries(bad.headers.entries()), bad.raw)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await sandboxPost(env, '/sandbox/control/faults', { kind: 'SLOW', delay_ms: 400, method: 'GET' });
    const t0 = Date.now();
    const slow = await send(env, 'GET', Q(req.combine_out_trade_no));
    expect(slow.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    const bogus = await sandboxPost(env, '/sandbox/control/faults', { kind: 'EXPLODE' });
    expect(bogus.status).toBe(400);
    await fetch(env.url + '/sandbox/control/faults', { method: 'DELETE' });
    expect((await sandboxGet(env, '/sandbox/control/faults')).faults).toEqual([]);
  });

  it('serves the phone page with the open order, its QR code and Pay buttons', async () => {
    const req = combineRequest(env);
    const c = await send(env, 'POST', CREATE, req);
    const res = await fetch(env.url + '/sandbox');
    expect(res.headers.get('content-type')).toContain('text/html');
    const html = await res.text();
    expect(html).toContain(req.combine_out_trade_no);
    expect(html).toContain('<svg');
    expect(html).toContain(`data-code="${c.json.code_url.replace(/&/g, '&amp;')}"`);
    expect(html).toContain(env.creds.subMerchants[0]!.name);
    const list = await sandboxGet(env, '/sandbox/orders');
    expect(list.orders.find((o: any) => o.combine_out_trade_no === req.combine_out_trade_no).total_amount).toBe(5050);
  });
});

describe('certificate mode', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup({ certificates: true });
  });
  afterAll(() => env.close());

  it('writes no public key for the merchant', () => {
    expect(env.creds.wechatpayPublicKey).toBeUndefined();
  });

  it('/v3/certificates returns two overlapping certificates, encrypted with the APIv3 key (AAD certificate)', async () => {
    const res = await send(env, 'GET', '/v3/certificates');
    expect(res.status).toBe(200);
    const data = res.json.data as any[];
    expect(data).toHaveLength(2);
    expect(new Set(data.map((d) => d.serial_no)).size).toBe(2);
    for (const d of data) {
      expect(d.encrypt_certificate.associated_data).toBe('certificate');
      const pem = decryptResource(d.encrypt_certificate, env.creds.apiV3Key).toString('utf8');
      const cert = new X509Certificate(pem);
      expect(cert.serialNumber.toUpperCase()).toBe(d.serial_no);
      expect(cert.publicKey.equals(env.wechatKeys.get(d.serial_no)!)).toBe(true);
    }
    const [older, newer] = data;
    expect(Date.parse(older.expire_time)).toBeGreaterThan(Date.parse(newer.effective_time));
    expect(Date.parse(older.effective_time)).toBeLessThan(Date.parse(newer.effective_time));
    // Signed by the newer certificate.
    const h = await env.verifier.verify(Object.fromEntries(res.headers.entries()), res.raw);
    expect(h.serial).toBe(newer.serial_no);
  });

  it('signs with the platform certificate the request names, or the public key during a migration', async () => {
    const certs = (await send(env, 'GET', '/v3/certificates')).json.data as any[];
    const older = certs[0].serial_no;
    const res = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { headers: { 'Wechatpay-Serial': older } });
    expect((await env.verifier.verify(Object.fromEntries(res.headers.entries()), res.raw)).serial).toBe(older);
    const pubId = [...env.wechatKeys.keys()].find((k) => k.startsWith('PUB_KEY_ID_'))!;
    const res2 = await send(env, 'POST', CREATE, combineRequest(env), { headers: { 'Wechatpay-Serial': pubId } });
    expect(res2.status).toBe(200);
    expect((await env.verifier.verify(Object.fromEntries(res2.headers.entries()), res2.raw)).serial).toBe(pubId);
  });

  it('runs the order flow with certificate-signed answers', async () => {
    const req = combineRequest(env);
    const c = await send(env, 'POST', CREATE, req);
    const serial = (await env.verifier.verify(Object.fromEntries(c.headers.entries()), c.raw)).serial;
    expect(serial).not.toMatch(/^PUB_KEY_ID_/);
    await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false });
    const q = await send(env, 'GET', Q(req.combine_out_trade_no));
    expect(q.json.sub_orders.map((s: any) => s.trade_state)).toEqual(['SUCCESS', 'SUCCESS']);
  });
});

it('order numbers stay unique in tests', () => {
  expect(orderNo()).not.toBe(orderNo());
});
