/** Basic Native: one merchant's sale, authenticated as that merchant, paid, notified and billed with its own keys. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptResource } from '../../shared/wechatpay/aead';
import { parseTradeBillText } from '../../shared/wechatpay/bill-parser';
import { beijingDate } from '../../shared/wechatpay/time';
import { combineRequest, orderNo, receiver, sandboxGet, sandboxPost, send, setup, waitFor, type Env } from './helpers';

const NATIVE = '/v3/pay/transactions/native';
const BY_NO = (no: string, mchid?: string) => `/v3/pay/transactions/out-trade-no/${no}${mchid ? `?mchid=${mchid}` : ''}`;
const BY_ID = (id: string, mchid: string) => `/v3/pay/transactions/id/${id}?mchid=${mchid}`;
const CLOSE = (no: string) => `/v3/pay/transactions/out-trade-no/${no}/close`;

let env: Env;
let rx: Awaited<ReturnType<typeof receiver>>;
let pk: string; // a participant in public-key mode
let cert: string; // a participant in certificate mode

beforeAll(async () => {
  env = await setup({ timeScale: 300, modes: { participants: ['public_key', 'certificates'] } });
  [pk, cert] = env.participants as [string, string];
  rx = await receiver(() => 204);
});
afterAll(async () => {
  await rx.close();
  await env.close();
});

function nativeRequest(mchid: string, over: Record<string, unknown> = {}) {
  return { appid: env.creds.appid, mchid, description: '红烧牛肉面', out_trade_no: orderNo('N'), notify_url: rx.url, amount: { total: 2800, currency: 'CNY' }, attach: 'ticket-1', ...over };
}

const shiftClock = (s: number) => sandboxPost(env, '/sandbox/control/clock', { offset_seconds: s });

describe('basic Native', () => {
  it('creates as the merchant named in the body, queries by number (?mchid= its own), signs with its keys', async () => {
    const req = nativeRequest(pk);
    const c = await send(env, 'POST', NATIVE, req, { as: pk });
    expect(c.status).toBe(200);
    expect(c.json.code_url).toMatch(/^weixin:\/\/wxpay\/bizpayurl/);
    expect(c.headers.get('wechatpay-serial')).toBe(env.merchants.get(pk)!.wechatpayPublicKey!.id);
    await env.verifier.verify(Object.fromEntries(c.headers.entries()), c.raw);
    const q = await send(env, 'GET', BY_NO(req.out_trade_no, pk), undefined, { as: pk });
    expect(q.status).toBe(200);
    expect(q.json).toMatchObject({ appid: env.creds.appid, mchid: pk, out_trade_no: req.out_trade_no, trade_type: 'NATIVE', trade_state: 'NOTPAY', attach: 'ticket-1', amount: { total: 2800 } });
    expect(q.json.transaction_id).toBeUndefined();
    // ?mchid= is required and must be the signer; other merchants do not see it.
    expect((await send(env, 'GET', BY_NO(req.out_trade_no), undefined, { as: pk })).json).toMatchObject({ code: 'PARAM_ERROR', detail: { field: 'mchid' } });
    expect((await send(env, 'GET', BY_NO(req.out_trade_no, cert), undefined, { as: pk })).json).toMatchObject({ code: 'PARAM_ERROR' });
    expect((await send(env, 'GET', BY_NO(req.out_trade_no, cert), undefined, { as: cert })).status).toBe(404);
    // A basic number is not a combine order, and a combine sub-order is not a basic order.
    expect((await send(env, 'GET', `/v3/combine-transactions/out-trade-no/${req.out_trade_no}`)).status).toBe(404);
    const combine = combineRequest(env);
    await send(env, 'POST', '/v3/combine-transactions/native', combine);
    const sub = combine.sub_orders[0]!;
    expect((await send(env, 'GET', BY_NO(sub.out_trade_no, sub.mchid), undefined, { as: sub.mchid })).json.code).toBe('ORDER_NOT_EXIST');
    const reuse = await send(env, 'POST', NATIVE, nativeRequest(sub.mchid, { out_trade_no: sub.out_trade_no }), { as: sub.mchid });
    expect([reuse.status, reuse.json.code]).toEqual([403, 'OUT_TRADE_NO_USED']);
  });

  it('refuses another signer, a foreign appid and bad fields with the field named', async () => {
    const other = await send(env, 'POST', NATIVE, nativeRequest(pk), { as: cert });
    expect([other.status, other.json.code, other.json.detail.field]).toEqual([400, 'PARAM_ERROR', '/mchid']);
    const appid = await send(env, 'POST', NATIVE, nativeRequest(pk, { appid: 'wx0000000000000000' }), { as: pk });
    expect([appid.status, appid.json.code]).toEqual([400, 'APPID_MCHID_NOT_MATCH']);
    for (const [over, field] of [
      [{ out_trade_no: 'N1234' }, '/out_trade_no'],
      [{ out_trade_no: 'N1234|5678' }, '/out_trade_no'],
      [{ description: '面'.repeat(128) }, '/description'],
      [{ attach: 'a'.repeat(129) }, '/attach'],
      [{ amount: { total: 0 } }, '/amount/total'],
      [{ amount: { total: 100, currency: 'USD' } }, '/amount/currency'],
      [{ notify_url: 'ftp://x/notify' }, '/notify_url'],
      [{ time_expire: '2026-01-01 10:00:00' }, '/time_expire'],
      // string(16) (addendum), not 32.
      [{ scene_info: { device_id: 'POS-0000000000001', payer_client_ip: '10.0.0.1' } }, '/scene_info/device_id'],
    ] as const) {
      const r = await send(env, 'POST', NATIVE, nativeRequest(pk, over), { as: pk });
      expect([r.status, r.json.code, r.json.detail?.field], field).toEqual([400, 'PARAM_ERROR', field]);
    }
  });

  it('re-request renews code_url (the old one no longer pays); other content → INVALID_REQUEST; time_expire clamped', async () => {
    const req = nativeRequest(pk, { time_expire: '2099-01-01T00:00:00+08:00' });
    const a = await send(env, 'POST', NATIVE, req, { as: pk });
    const b = await send(env, 'POST', NATIVE, { ...req }, { as: pk });
    expect(b.json.code_url).not.toBe(a.json.code_url);
    expect((await sandboxPost(env, '/sandbox/pay', { code_url: a.json.code_url })).json.code).toBe('CODE_URL_EXPIRED');
    const changed = await send(env, 'POST', NATIVE, { ...req, amount: { total: 2801, currency: 'CNY' } }, { as: pk });
    expect([changed.status, changed.json.code]).toEqual([400, 'INVALID_REQUEST']);
    const listed = (await sandboxGet(env, '/sandbox/orders')).orders.find((o: any) => o.kind === 'basic' && o.combine_out_trade_no === req.out_trade_no);
    expect(Date.parse(listed.expires_at) - Date.now()).toBeLessThanOrEqual(7 * 86_400_000 + 5000);
    expect(listed.mchid).toBe(pk);
  });

  for (const who of ['public-key', 'certificate'] as const) {
    it(`is paid through /sandbox/pay; TRANSACTION.SUCCESS signed and encrypted with the ${who} merchant's own keys; query by id; its bill`, async () => {
      const mchid = who === 'public-key' ? pk : cert;
      const req = nativeRequest(mchid, { attach: `bill-${who}` });
      const c = await send(env, 'POST', NATIVE, req, { as: mchid });
      const paid = await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url });
      expect(paid.json).toMatchObject({ kind: 'basic', combine_out_trade_no: req.out_trade_no, mchid, state: 'SUCCESS' });
      const n = await waitFor(() => rx.received.find((r) => r.body.toString().includes('TRANSACTION.SUCCESS') && (() => {
        try {
          return JSON.parse(decryptResource(JSON.parse(r.body.toString()).resource, env.merchants.get(mchid)!.apiV3Key).toString()).out_trade_no === req.out_trade_no;
        } catch {
          return false;
        }
      })()));
      const verified = await env.verifier.verify(n.headers as Record<string, string>, n.body);
      if (who === 'public-key') expect(verified.serial).toBe(env.merchants.get(mchid)!.wechatpayPublicKey!.id);
      else {
        const certs = await send(env, 'GET', '/v3/certificates', undefined, { as: mchid });
        expect(certs.json.data.map((d: any) => d.serial_no)).toContain(n.headers['wechatpay-serial']);
      }
      const envelope = JSON.parse(n.body.toString());
      expect(envelope).toMatchObject({ event_type: 'TRANSACTION.SUCCESS', resource: { original_type: 'transaction', associated_data: 'transaction' } });
      // Not the initiator's APIv3 key.
      expect(() => decryptResource(envelope.resource, env.creds.apiV3Key)).toThrow();
      const resource = JSON.parse(decryptResource(envelope.resource, env.merchants.get(mchid)!.apiV3Key).toString());
      const q = await send(env, 'GET', BY_NO(req.out_trade_no, mchid), undefined, { as: mchid });
      expect(resource).toEqual(q.json);
      expect(q.json).toMatchObject({ trade_state: 'SUCCESS', trade_state_desc: '支付成功', amount: { total: 2800, payer_total: 2800 }, payer: { openid: expect.any(String) } });
      const byId = await send(env, 'GET', BY_ID(q.json.transaction_id, mchid), undefined, { as: mchid });
      expect(byId.json).toEqual(q.json);
      const otherMchid = mchid === pk ? cert : pk;
      expect((await send(env, 'GET', BY_ID(q.json.transaction_id, otherMchid), undefined, { as: otherMchid })).status).toBe(404);

      await shiftClock(36 * 3600);
      try {
        const apply = await send(env, 'GET', `/v3/bill/tradebill?bill_date=${beijingDate(Date.now())}`, undefined, { as: mchid });
        const u = new URL(apply.json.download_url);
        const bill = parseTradeBillText((await send(env, 'GET', u.pathname + u.search, undefined, { as: mchid })).raw.toString('utf8'));
        expect(bill.records.find((r) => r.out_trade_no === req.out_trade_no)).toMatchObject({ mchid, total_fee: 2800, attach: `bill-${who}`, transaction_id: q.json.transaction_id, trade_state: 'SUCCESS' });
      } finally {
        await shiftClock(0);
      }
    });
  }

  it('close: too early refused, then 204 and again 204 (re-entrant); closed cannot be paid; paid → ORDER_PAID; paying → 202 USER_PAYING', async () => {
    const req = nativeRequest(pk);
    const c = await send(env, 'POST', NATIVE, req, { as: pk });
    const early = await send(env, 'POST', CLOSE(req.out_trade_no), { mchid: pk }, { as: pk });
    expect([early.status, early.json.code]).toEqual([400, 'INVALID_REQUEST']);
    const paying = nativeRequest(pk);
    const p = await send(env, 'POST', NATIVE, paying, { as: pk });
    await sandboxPost(env, '/sandbox/pay', { code_url: p.json.code_url, outcome: 'USERPAYING' });
    const paid = nativeRequest(pk);
    const pd = await send(env, 'POST', NATIVE, paid, { as: pk });
    await sandboxPost(env, '/sandbox/pay', { code_url: pd.json.code_url, notify: false });
    await shiftClock(301);
    try {
      expect((await send(env, 'POST', CLOSE(req.out_trade_no), { mchid: cert }, { as: pk })).json.detail.field).toBe('/mchid');
      for (let i = 0; i < 2; i++) {
        const r = await send(env, 'POST', CLOSE(req.out_trade_no), { mchid: pk }, { as: pk });
        expect(r.status).toBe(204);
        await env.verifier.verify(Object.fromEntries(r.headers.entries()), r.raw);
      }
      expect((await send(env, 'GET', BY_NO(req.out_trade_no, pk), undefined, { as: pk })).json.trade_state).toBe('CLOSED');
      expect((await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url })).json.code).toBe('ORDER_CLOSED');
      const pc = await send(env, 'POST', CLOSE(paying.out_trade_no), { mchid: pk }, { as: pk });
      expect([pc.status, pc.json.code]).toEqual([202, 'USER_PAYING']);
      const paidClose = await send(env, 'POST', CLOSE(paid.out_trade_no), { mchid: pk }, { as: pk });
      expect([paidClose.status, paidClose.json.code]).toEqual([400, 'ORDER_PAID']);
      expect((await send(env, 'POST', CLOSE('NOSUCH000001'), { mchid: pk }, { as: pk })).status).toBe(404);
    } finally {
      await shiftClock(0);
    }
  });

  it('the phone page lists a basic order with its merchant', async () => {
    const req = nativeRequest(cert, { description: '珍珠奶茶单点' });
    await send(env, 'POST', NATIVE, req, { as: cert });
    const html = await (await fetch(env.url + '/sandbox')).text();
    expect(html).toContain(req.out_trade_no);
    expect(html).toContain('珍珠奶茶单点');
    expect(html).toContain('单商户');
  });
});
