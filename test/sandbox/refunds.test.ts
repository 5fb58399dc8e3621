/** Refunds per sub-order, made by the sub-order's own merchant: rules, settling, notifications, bills, the page. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptResource } from '../../shared/wechatpay/aead';
import { parseTradeBillText } from '../../shared/wechatpay/bill-parser';
import { beijingDate } from '../../shared/wechatpay/time';
import { combineRequest, orderNo, receiver, sandboxGet, sandboxPost, send, setup, waitFor, type Env, type Received } from './helpers';

const REFUNDS = '/v3/refund/domestic/refunds';
let env: Env;
let rx: Awaited<ReturnType<typeof receiver>>;
let pk: string;
let cert: string;
let offset = 0;

beforeAll(async () => {
  env = await setup({ timeScale: 300, refundDelayMs: 50, modes: { participants: ['public_key', 'certificates'] } });
  [pk, cert] = env.participants as [string, string];
  rx = await receiver(() => 204);
});
afterAll(async () => {
  await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 0 });
  await rx.close();
  await env.close();
});

/** Moves the business clock forward (refunds of one order must be a minute apart). */
async function advance(seconds: number) {
  offset += seconds;
  expect((await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: offset })).status).toBe(200);
}

/** A paid combine order: sub-order 0 of `pk` (3800 fen), sub-order 1 of `cert` (1250 fen). */
async function paidOrder() {
  const req = combineRequest(env, {}, rx.url);
  req.sub_orders[0]!.mchid = pk;
  req.sub_orders[1]!.mchid = cert;
  const c = await send(env, 'POST', '/v3/combine-transactions/native', req);
  const p = await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false });
  expect(p.status).toBe(200);
  return { req, tx: p.json.sub_orders.map((s: any) => s.transaction_id as string) };
}

const refundBody = (out_trade_no: string, refund: number, total: number, extra: Record<string, unknown> = {}) => ({
  out_trade_no, out_refund_no: orderNo('R'), reason: '顾客退货', notify_url: rx.url, amount: { refund, total, currency: 'CNY' }, ...extra,
});

function refundNotification(mchid: string, outRefundNo: string): Received | undefined {
  return rx.received.find((r) => {
    try {
      const e = JSON.parse(r.body.toString());
      return e.event_type?.startsWith('REFUND.') && JSON.parse(decryptResource(e.resource, env.merchants.get(mchid)!.apiV3Key).toString()).out_refund_no === outRefundNo;
    } catch {
      return false;
    }
  });
}

describe('refunds', () => {
  it("the sub-order's merchant refunds part of it: PROCESSING, then SUCCESS with REFUND.SUCCESS signed and encrypted with its keys; the sub-order reads REFUND", async () => {
    const { req, tx } = await paidOrder();
    const body = refundBody(req.sub_orders[1]!.out_trade_no, 500, 1250);
    const r = await send(env, 'POST', REFUNDS, body, { as: cert });
    expect(r.status).toBe(200);
    await env.verifier.verify(Object.fromEntries(r.headers.entries()), r.raw);
    expect(r.json).toMatchObject({ out_refund_no: body.out_refund_no, out_trade_no: req.sub_orders[1]!.out_trade_no, transaction_id: tx[1], status: 'PROCESSING', channel: 'ORIGINAL', amount: { total: 1250, refund: 500, payer_refund: 500, currency: 'CNY' } });
    expect(r.json.refund_id).toMatch(/^\d{20,}$/);
    expect(r.json.success_time).toBeUndefined();
    const done = await waitFor(async () => {
      const q = await send(env, 'GET', `${REFUNDS}/${body.out_refund_no}`, undefined, { as: cert });
      return q.json.status === 'SUCCESS' && q.json;
    });
    expect(done).toMatchObject({ refund_id: r.json.refund_id, success_time: expect.stringMatching(/\+08:00$/) });
    const n = await waitFor(() => refundNotification(cert, body.out_refund_no));
    const verified = await env.verifier.verify(n.headers as Record<string, string>, n.body);
    const certs = await send(env, 'GET', '/v3/certificates', undefined, { as: cert });
    expect(certs.json.data.map((d: any) => d.serial_no)).toContain(verified.serial);
    const envelope = JSON.parse(n.body.toString());
    expect(envelope).toMatchObject({ event_type: 'REFUND.SUCCESS', summary: '退款成功', resource_type: 'encrypt-resource', resource: { original_type: 'refund', associated_data: 'refund' } });
    expect(() => decryptResource(envelope.resource, env.creds.apiV3Key)).toThrow();
    const resource = JSON.parse(decryptResource(envelope.resource, env.merchants.get(cert)!.apiV3Key).toString());
    expect(resource).toEqual({
      mchid: cert, out_trade_no: req.sub_orders[1]!.out_trade_no, transaction_id: tx[1], out_refund_no: body.out_refund_no, refund_id: r.json.refund_id,
      refund_status: 'SUCCESS', success_time: done.success_time, user_received_account: expect.any(String), amount: { total: 1250, refund: 500, payer_total: 1250, payer_refund: 500 },
    });
    const q = await send(env, 'GET', `/v3/combine-transactions/out-trade-no/${req.combine_out_trade_no}`);
    expect(q.json.sub_orders.map((s: any) => s.trade_state)).toEqual(['SUCCESS', 'REFUND']);
  });

  it('the combine initiator is refused as WeChat Pay refuses it; another merchant does not find the order; the combine number is no sub-order', async () => {
    const { req, tx } = await paidOrder();
    const sub = req.sub_orders[0]!;
    let r = await send(env, 'POST', REFUNDS, refundBody(sub.out_trade_no, 100, 3800));
    expect([r.status, r.json.code]).toEqual([400, 'INVALID_REQUEST']);
    expect(r.json.message).toContain('您的请求参数与订单信息不一致');
    r = await send(env, 'POST', REFUNDS, { ...refundBody('', 100, 3800), out_trade_no: undefined, transaction_id: tx[0] });
    expect([r.status, r.json.code]).toEqual([400, 'INVALID_REQUEST']);
    r = await send(env, 'POST', REFUNDS, refundBody(sub.out_trade_no, 100, 3800), { as: cert });
    expect([r.status, r.json.code]).toEqual([404, 'RESOURCE_NOT_EXISTS']);
    r = await send(env, 'POST', REFUNDS, refundBody(req.combine_out_trade_no, 100, 3800), { as: pk });
    expect([r.status, r.json.code]).toEqual([404, 'RESOURCE_NOT_EXISTS']);
    // By transaction_id, as its own merchant: accepted.
    r = await send(env, 'POST', REFUNDS, { ...refundBody('', 100, 3800), out_trade_no: undefined, transaction_id: tx[0] }, { as: pk });
    expect([r.status, r.json.out_trade_no]).toEqual([200, sub.out_trade_no]);
    expect((await send(env, 'GET', `${REFUNDS}/${r.json.out_refund_no}`, undefined, { as: cert })).json.code).toBe('RESOURCE_NOT_EXISTS');
  });

  it('validates fields; an unpaid order and a wrong total are refused', async () => {
    const { req } = await paidOrder();
    const no = req.sub_orders[0]!.out_trade_no;
    for (const [over, field] of [
      [{ out_refund_no: 'bad#no' }, '/out_refund_no'],
      [{ reason: '退'.repeat(81) }, '/reason'],
      [{ amount: { refund: 0, total: 3800, currency: 'CNY' } }, '/amount/refund'],
      [{ amount: { refund: 3801, total: 3800, currency: 'CNY' } }, '/amount/refund'],
      [{ amount: { refund: 100, total: 3800, currency: 'USD' } }, '/amount/currency'],
      [{ amount: { refund: 100, total: 3799, currency: 'CNY' } }, '/amount/total'],
      [{ notify_url: 'not a url' }, '/notify_url'],
    ] as const) {
      const r = await send(env, 'POST', REFUNDS, refundBody(no, 100, 3800, over), { as: pk });
      expect([r.status, r.json.code, r.json.detail?.field], field).toEqual([400, 'PARAM_ERROR', field]);
    }
    const open = combineRequest(env);
    open.sub_orders[0]!.mchid = pk;
    await send(env, 'POST', '/v3/combine-transactions/native', open);
    const r = await send(env, 'POST', REFUNDS, refundBody(open.sub_orders[0]!.out_trade_no, 100, 3800), { as: pk });
    expect([r.status, r.json.code]).toEqual([400, 'INVALID_REQUEST']);
  });

  it('same out_refund_no = same refund; a minute apart; never more than the total (NOT_ENOUGH); a CLOSED refund gives its amount back', async () => {
    const { req } = await paidOrder();
    const no = req.sub_orders[0]!.out_trade_no;
    const first = refundBody(no, 1000, 3800);
    const a = await send(env, 'POST', REFUNDS, first, { as: pk });
    const again = await send(env, 'POST', REFUNDS, first, { as: pk });
    expect([again.status, again.json.refund_id]).toEqual([200, a.json.refund_id]);
    const changed = await send(env, 'POST', REFUNDS, { ...first, amount: { refund: 1001, total: 3800, currency: 'CNY' } }, { as: pk });
    expect([changed.status, changed.json.code]).toEqual([400, 'INVALID_REQUEST']);
    const soon = await send(env, 'POST', REFUNDS, refundBody(no, 100, 3800), { as: pk });
    expect([soon.status, soon.json.code]).toEqual([429, 'FREQUENCY_LIMITED']);
    expect(soon.json.message).toMatch(/60秒/);
    await advance(61);
    const over = await send(env, 'POST', REFUNDS, refundBody(no, 2801, 3800), { as: pk });
    expect([over.status, over.json.code]).toEqual([403, 'NOT_ENOUGH']);
    // The next one ends CLOSED: its amount can be refunded again.
    expect((await sandboxPost(env, '/sandbox/control/refund-outcome', { outcome: 'CLOSED' })).status).toBe(200);
    const closed = await send(env, 'POST', REFUNDS, refundBody(no, 2800, 3800), { as: pk });
    expect(closed.status).toBe(200);
    await waitFor(() => refundNotification(pk, closed.json.out_refund_no));
    expect((await send(env, 'GET', `${REFUNDS}/${closed.json.out_refund_no}`, undefined, { as: pk })).json.status).toBe('CLOSED');
    await advance(61);
    const rest = await send(env, 'POST', REFUNDS, refundBody(no, 2800, 3800), { as: pk });
    expect(rest.status).toBe(200);
    await advance(61);
    const none = await send(env, 'POST', REFUNDS, refundBody(no, 1, 3800), { as: pk });
    expect([none.status, none.json.code]).toEqual([403, 'NOT_ENOUGH']);
  });

  it('ABNORMAL by fault injection, notified as REFUND.ABNORMAL; armed outcomes can be listed and cleared', async () => {
    const { req } = await paidOrder();
    await advance(61);
    const body = refundBody(req.sub_orders[0]!.out_trade_no, 300, 3800);
    expect((await sandboxPost(env, '/sandbox/control/refund-outcome', { outcome: 'ABNORMAL', out_refund_no: body.out_refund_no })).status).toBe(200);
    expect((await sandboxPost(env, '/sandbox/control/refund-outcome', { outcome: 'SIDEWAYS' })).status).toBe(400);
    expect((await sandboxGet(env, '/sandbox/control/refund-outcome')).armed).toHaveLength(1);
    expect((await send(env, 'POST', REFUNDS, body, { as: pk })).status).toBe(200);
    const n = await waitFor(() => refundNotification(pk, body.out_refund_no));
    expect(JSON.parse(n.body.toString())).toMatchObject({ event_type: 'REFUND.ABNORMAL', summary: '退款异常' });
    expect((await send(env, 'GET', `${REFUNDS}/${body.out_refund_no}`, undefined, { as: pk })).json.status).toBe('ABNORMAL');
    expect((await sandboxGet(env, '/sandbox/control/refund-outcome')).armed).toHaveLength(0);
  });

  it('at most 50 refunds per order, and only within 365 days of payment', async () => {
    const { req } = await paidOrder();
    const no = req.sub_orders[0]!.out_trade_no;
    for (let i = 0; i < 50; i++) {
      await advance(61);
      expect((await send(env, 'POST', REFUNDS, refundBody(no, 1, 3800), { as: pk })).status).toBe(200);
    }
    await advance(61);
    const fiftyFirst = await send(env, 'POST', REFUNDS, refundBody(no, 1, 3800), { as: pk });
    expect([fiftyFirst.status, fiftyFirst.json.code]).toEqual([400, 'INVALID_REQUEST']);
    expect(fiftyFirst.json.message).toMatch(/50/);
    const other = (await paidOrder()).req.sub_orders[0]!.out_trade_no;
    await advance(366 * 86_400);
    const late = await send(env, 'POST', REFUNDS, refundBody(other, 1, 3800), { as: pk });
    expect([late.status, late.json.code]).toEqual([400, 'INVALID_REQUEST']);
    expect(late.json.message).toMatch(/365/);
  });

  it('a basic order is refunded by its merchant and reads REFUND', async () => {
    const out_trade_no = orderNo('N');
    const c = await send(env, 'POST', '/v3/pay/transactions/native', { appid: env.creds.appid, mchid: pk, description: '单点', out_trade_no, notify_url: rx.url, amount: { total: 900 } }, { as: pk });
    await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false });
    const r = await send(env, 'POST', REFUNDS, refundBody(out_trade_no, 900, 900), { as: pk });
    expect(r.status).toBe(200);
    const q = await send(env, 'GET', `/v3/pay/transactions/out-trade-no/${out_trade_no}?mchid=${pk}`, undefined, { as: pk });
    expect([q.json.trade_state, q.json.trade_state_desc]).toEqual(['REFUND', '转入退款']);
  });

  it("refund rows are in that merchant's own bill (ALL and REFUND), not in SUCCESS; the phone page shows them", async () => {
    offset = 0;
    await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 0 });
    const day = beijingDate(Date.now());
    const { req } = await paidOrder();
    const body = refundBody(req.sub_orders[1]!.out_trade_no, 250, 1250);
    const r = await send(env, 'POST', REFUNDS, body, { as: cert });
    await waitFor(async () => (await send(env, 'GET', `${REFUNDS}/${body.out_refund_no}`, undefined, { as: cert })).json.status === 'SUCCESS');
    const html = await (await fetch(env.url + '/sandbox')).text();
    expect(html).toContain('退款');
    expect(html).toContain(req.sub_orders[1]!.out_trade_no);
    expect(html).toContain('¥2.50');
    const listed = (await sandboxGet(env, '/sandbox/refunds')).refunds.find((x: any) => x.out_refund_no === body.out_refund_no);
    expect(listed).toMatchObject({ mchid: cert, status: 'SUCCESS', reason: '顾客退货', amount: { refund: 250 } });
    await advance(36 * 3600);
    const bill = async (type: string, as: string) => {
      const apply = await send(env, 'GET', `/v3/bill/tradebill?bill_date=${day}&bill_type=${type}`, undefined, { as });
      expect(apply.status, `${type} ${apply.raw}`).toBe(200);
      const u = new URL(apply.json.download_url);
      return (await send(env, 'GET', u.pathname + u.search, undefined, { as })).raw.toString('utf8');
    };
    const all = parseTradeBillText(await bill('ALL', cert));
    const row = all.records.find((x) => x.out_refund_no === body.out_refund_no);
    expect(row).toMatchObject({ mchid: cert, trade_state: 'REFUND', refund_id: r.json.refund_id, refund_fee: 250, applied_refund_fee: 250, total_fee: 0, refund_status: 'SUCCESS', refund_type: 'ORIGINAL', out_trade_no: req.sub_orders[1]!.out_trade_no });
    expect(row!.fee_milli_fen).toBeLessThan(0);
    expect(all.records.find((x) => x.out_trade_no === req.sub_orders[1]!.out_trade_no && x.trade_state === 'SUCCESS')!.total_fee).toBe(1250);
    expect(all.summary.refund_fee).toBe(all.records.reduce((s, x) => s + x.refund_fee, 0));
    const refundText = await bill('REFUND', cert);
    const refundsOnly = parseTradeBillText(refundText);
    expect(refundsOnly.billType).toBe('REFUND');
    expect(refundText.split('\r\n')[1]!.split(',`')).toHaveLength(29);
    expect(refundsOnly.records.length).toBeGreaterThan(0);
    expect(refundsOnly.records.every((x) => x.trade_state === 'REFUND' && x.mchid === cert)).toBe(true);
    expect(parseTradeBillText(await bill('SUCCESS', cert)).records.every((x) => x.trade_state === 'SUCCESS')).toBe(true);
    // The initiator's bill never holds a participant's refund.
    const initiator = await send(env, 'GET', `/v3/bill/tradebill?bill_date=${day}&bill_type=REFUND`);
    expect(initiator.json.code).toBe('NO_STATEMENT_EXIST');
  });

  it('a PROCESSING refund survives a restart and settles after it, with its notification', async () => {
    await env.restart({ refundDelayMs: 1500 });
    const { req } = await paidOrder();
    const body = refundBody(req.sub_orders[0]!.out_trade_no, 700, 3800);
    expect((await send(env, 'POST', REFUNDS, body, { as: pk })).json.status).toBe('PROCESSING');
    await env.restart({ refundDelayMs: 1500 });
    expect((await send(env, 'GET', `${REFUNDS}/${body.out_refund_no}`, undefined, { as: pk })).json.status).toBe('PROCESSING');
    await waitFor(async () => (await send(env, 'GET', `${REFUNDS}/${body.out_refund_no}`, undefined, { as: pk })).json.status === 'SUCCESS');
    const n = await waitFor(() => refundNotification(pk, body.out_refund_no));
    expect(JSON.parse(n.body.toString()).event_type).toBe('REFUND.SUCCESS');
  });
});
