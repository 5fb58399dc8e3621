import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeNative, createNative, queryNative, queryNativeById } from '../../shared/wechatpay/native';
import { ApiError, ResponseError, ValidationError, VerificationError } from '../../shared/wechatpay/errors';
import { formatBeijing } from '../../shared/wechatpay/time';
import type { Transport } from '../../shared/wechatpay/transport';
import type { NativeRequest } from '../../shared/wechatpay/models';
import type { FakeWechatPay } from './helpers/fake-wechatpay';
import { startFakeTransport } from './helpers/fake-transport';
import { apiKey, rsaPair } from './helpers/keys';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { encryptResource } from '../../shared/wechatpay/aead';
import { signBody } from '../../shared/wechatpay/sign';

const merchant = rsaPair();
const wx = rsaPair();
const PUB_ID = 'PUB_KEY_ID_0119000001102025';
const MCHID = '1900000110';
let fake: FakeWechatPay;
let api: Transport;

const EXPIRE = formatBeijing(Date.now() + 1800_000);
const request = (): NativeRequest => ({
  appid: 'wxd678efh567hg6787',
  mchid: MCHID,
  description: '面馆-牛肉面',
  out_trade_no: 'S20250314120301A',
  time_expire: EXPIRE,
  attach: 'C20250314120301',
  notify_url: 'https://pos.example.com/wechatpay/notify',
  amount: { total: 2800, currency: 'CNY' },
  scene_info: { device_id: 'POS1:1', payer_client_ip: '10.0.0.8' },
});

const paid = (over: Record<string, unknown> = {}) => ({
  appid: 'wxd678efh567hg6787', mchid: MCHID, out_trade_no: 'S20250314120301A', transaction_id: '4200002601202503141234567890',
  trade_type: 'NATIVE', trade_state: 'SUCCESS', trade_state_desc: '支付成功', bank_type: 'OTHERS', attach: 'C20250314120301',
  success_time: '2025-03-14T12:03:41+08:00', payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
  amount: { total: 2800, payer_total: 2800, currency: 'CNY', payer_currency: 'CNY' }, future_field: 1,
  ...over,
});

beforeAll(async () => {
  ({ fake, api } = await startFakeTransport({ mchid: MCHID, merchant, wx, pubId: PUB_ID }));
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
});

describe('basic Native create/query/close over real HTTP', () => {
  it('create: sends exactly the validated body, signed, and returns the verified code_url', async () => {
    fake.on('POST', '/v3/pay/transactions/native', () => ({ body: { code_url: 'weixin://wxpay/bizpayurl?pr=p4lpSuKzz' } }));
    const r = await createNative(api, request());
    expect(r).toEqual({ code_url: 'weixin://wxpay/bizpayurl?pr=p4lpSuKzz' });
    const sent = fake.requests[0]!;
    expect(fake.requests).toHaveLength(1);
    expect(sent.signatureOk).toBe(true);
    expect(sent.url).toBe('/v3/pay/transactions/native');
    expect(JSON.parse(sent.body.toString('utf8'))).toEqual(request());
  });

  it('currency defaults to CNY on the wire; absent optional fields are not sent', async () => {
    fake.on('POST', '/v3/pay/transactions/native', () => ({ body: { code_url: 'weixin://x' } }));
    await createNative(api, { appid: 'wxd678efh567hg6787', mchid: MCHID, description: '饮品', out_trade_no: 'S2025*0314', notify_url: 'http://127.0.0.1:9/n', amount: { total: 1 } });
    expect(JSON.parse(fake.requests[0]!.body.toString('utf8'))).toEqual({ appid: 'wxd678efh567hg6787', mchid: MCHID, description: '饮品', out_trade_no: 'S2025*0314', notify_url: 'http://127.0.0.1:9/n', amount: { total: 1, currency: 'CNY' } });
  });

  it('bad input is refused before anything is sent, naming the field', async () => {
    const bad: [string, (o: NativeRequest) => void][] = [
      ['/appid', (o) => { (o as { appid?: string }).appid = undefined; }],
      ['/mchid', (o) => { o.mchid = 'mch-1'; }],
      ['/description', (o) => { o.description = '饮'.repeat(43); }], // 129 bytes, 43 characters
      ['/description', (o) => { o.description = '咖啡😀'; }],
      ['/description', (o) => { o.description = ''; }],
      ['/out_trade_no', (o) => { o.out_trade_no = 'S1234'; }],
      ['/out_trade_no', (o) => { o.out_trade_no = 'S'.repeat(33); }],
      ['/out_trade_no', (o) => { o.out_trade_no = 'S2025|0314'; }],
      ['/time_expire', (o) => { o.time_expire = new Date().toISOString(); }],
      ['/time_expire', (o) => { o.time_expire = '2025-02-30T10:00:00+08:00'; }],
      ['/attach', (o) => { o.attach = '合'.repeat(43); }],
      ['/amount/total', (o) => { o.amount.total = 0; }],
      ['/amount/total', (o) => { o.amount.total = 12.5; }],
      ['/amount/total', (o) => { o.amount.total = -1; }],
      ['/amount/total', (o) => { (o.amount as { total: unknown }).total = '2800'; }],
      ['/amount/currency', (o) => { (o.amount as { currency: string }).currency = 'USD'; }],
      ['/amount', (o) => { (o as { amount?: unknown }).amount = undefined; }],
      ['/notify_url', (o) => { o.notify_url = 'https://pos.example.com/notify?x=1'; }],
      ['/notify_url', (o) => { o.notify_url = `https://pos.example.com/${'n'.repeat(240)}`; }],
      ['/scene_info/payer_client_ip', (o) => { o.scene_info = { payer_client_ip: 'not-an-ip' }; }],
      ['/scene_info/device_id', (o) => { o.scene_info = { device_id: 'POS-0000000000001', payer_client_ip: '10.0.0.1' }; }],
      ['/support_fapiao', (o) => { (o as { support_fapiao?: unknown }).support_fapiao = 'yes'; }],
      ['/settle_info/profit_sharing', (o) => { (o as { settle_info?: unknown }).settle_info = { profit_sharing: 1 }; }],
    ];
    for (const [field, mutate] of bad) {
      const o = request();
      mutate(o);
      const err = await createNative(api, o).catch((e) => e);
      expect(err, field).toBeInstanceOf(ValidationError);
      expect(err.field, err.message).toBe(field);
    }
    expect(fake.requests).toHaveLength(0);
    // The limits themselves pass: 126 bytes of description, 128 of attach, 32-character number.
    fake.on('POST', '/v3/pay/transactions/native', () => ({ body: { code_url: 'weixin://x' } }));
    const ok = request();
    ok.description = '饮'.repeat(42);
    ok.attach = 'a'.repeat(128);
    ok.out_trade_no = 'S'.repeat(32);
    await createNative(api, ok);
    expect(fake.requests).toHaveLength(1);
  });

  it('create: a tampered answer or one without code_url is refused', async () => {
    fake.on('POST', '/v3/pay/transactions/native', () => ({ body: { code_url: 'weixin://real' }, tamper: (b) => Buffer.from(b.toString().replace('real', 'evil')) }));
    await expect(createNative(api, request())).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    fake.on('POST', '/v3/pay/transactions/native', () => ({ body: { prepay_id: 'x' } }));
    await expect(createNative(api, request())).rejects.toBeInstanceOf(ResponseError);
  });

  it('query by out_trade_no: ?mchid= in the signed path; paid and unpaid answers typed, unknown fields kept', async () => {
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ body: paid() }));
    const r = await queryNative(api, MCHID, 'S20250314120301A');
    expect(fake.requests[0]!.url).toBe(`/v3/pay/transactions/out-trade-no/S20250314120301A?mchid=${MCHID}`);
    expect(fake.requests[0]!.signatureOk).toBe(true);
    expect(r).toMatchObject({ trade_state: 'SUCCESS', transaction_id: '4200002601202503141234567890', amount: { total: 2800 } });
    expect((r as unknown as { future_field: number }).future_field).toBe(1);
    // Unpaid: no transaction_id, amount without total (as some answers are).
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S2025*0314', () => ({ body: { appid: 'wxd678efh567hg6787', mchid: MCHID, out_trade_no: 'S2025*0314', trade_state: 'NOTPAY', trade_state_desc: '订单未支付', amount: { payer_currency: 'CNY' } } }));
    const u = await queryNative(api, MCHID, 'S2025*0314');
    expect(fake.requests[1]!.url).toBe(`/v3/pay/transactions/out-trade-no/S2025*0314?mchid=${MCHID}`);
    expect(fake.requests[1]!.signatureOk).toBe(true);
    expect(u.trade_state).toBe('NOTPAY');
  });

  it('query answers about another order or merchant, malformed or tampered, are refused', async () => {
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ body: paid({ out_trade_no: 'S20250314120301B' }) }));
    await expect(queryNative(api, MCHID, 'S20250314120301A')).rejects.toBeInstanceOf(ResponseError);
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ body: paid({ mchid: '1900000109' }) }));
    await expect(queryNative(api, MCHID, 'S20250314120301A')).rejects.toBeInstanceOf(ResponseError);
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ body: paid({ trade_state: undefined }) }));
    await expect(queryNative(api, MCHID, 'S20250314120301A')).rejects.toMatchObject({ message: expect.stringContaining('/trade_state') });
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ body: paid({ trade_state: 'NOTPAY' }), tamper: (b) => Buffer.from(b.toString().replace('NOTPAY', 'SUCCESS')) }));
    await expect(queryNative(api, MCHID, 'S20250314120301A')).rejects.toBeInstanceOf(VerificationError);
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ status: 404, body: { code: 'ORDER_NOT_EXIST', message: '订单不存在' }, signer: null }));
    await expect(queryNative(api, MCHID, 'S20250314120301A')).rejects.toMatchObject({ status: 404, code: 'ORDER_NOT_EXIST' });
    fake.requests.length = 0;
    await expect(queryNative(api, '19x', 'S20250314120301A')).rejects.toMatchObject({ field: 'mchid' });
    await expect(queryNative(api, MCHID, 'S1')).rejects.toMatchObject({ field: 'out_trade_no' });
    expect(fake.requests).toHaveLength(0);
  });

  it('query by transaction_id', async () => {
    fake.on('GET', '/v3/pay/transactions/id/', () => ({ body: paid() }));
    const r = await queryNativeById(api, MCHID, '4200002601202503141234567890');
    expect(fake.requests[0]!.url).toBe(`/v3/pay/transactions/id/4200002601202503141234567890?mchid=${MCHID}`);
    expect(r.out_trade_no).toBe('S20250314120301A');
    fake.on('GET', '/v3/pay/transactions/id/', () => ({ body: paid({ transaction_id: '4200002601202503140000000000' }) }));
    await expect(queryNativeById(api, MCHID, '4200002601202503141234567890')).rejects.toBeInstanceOf(ResponseError);
    await expect(queryNativeById(api, MCHID, '../x')).rejects.toMatchObject({ field: 'transaction_id' });
  });

  it('close: {mchid} → 204 resolves; already closed resolves; paying (202) and paid refusals throw', async () => {
    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 204 }));
    await closeNative(api, MCHID, 'S20250314120301A');
    expect(fake.requests[0]!.signatureOk).toBe(true);
    expect(JSON.parse(fake.requests[0]!.body.toString('utf8'))).toEqual({ mchid: MCHID });

    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 400, body: { code: 'ORDER_CLOSED', message: '订单已关闭' }, signer: null }));
    await expect(closeNative(api, MCHID, 'S20250314120301A')).resolves.toBeUndefined();

    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 202, body: { code: 'USER_PAYING', message: '用户支付中' } }));
    const paying = await closeNative(api, MCHID, 'S20250314120301A').catch((e) => e);
    expect(paying).toBeInstanceOf(ApiError);
    expect(paying).toMatchObject({ status: 202, code: 'USER_PAYING' });

    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 400, body: { code: 'ORDER_PAID', message: '订单已支付' }, signer: null }));
    await expect(closeNative(api, MCHID, 'S20250314120301A')).rejects.toMatchObject({ code: 'ORDER_PAID' });
  });

  it('close: an unsigned or wrongly signed 204 is not taken as closed', async () => {
    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 204, signer: null }));
    await expect(closeNative(api, MCHID, 'S20250314120301A')).rejects.toMatchObject({ code: 'HEADER_MISSING' });
    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 204, signer: { serial: PUB_ID, key: rsaPair().privateKey } }));
    await expect(closeNative(api, MCHID, 'S20250314120301A')).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });
});

describe('the per-merchant client exposes the same calls as methods', () => {
  const client = () => new WechatPayClient({
    mchid: MCHID, certSerial: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', privateKey: merchant.privateKey, apiV3Key: apiKey(),
    wechatpayPublicKey: { id: PUB_ID, key: wx.publicKey }, baseUrl: fake.url, backoffBaseMs: 5,
  });

  it('createNative / queryNative / queryNativeById / closeNative as this merchant; another mchid is refused unsent', async () => {
    const c = client();
    fake.on('POST', '/v3/pay/transactions/native', () => ({ body: { code_url: 'weixin://m' } }));
    fake.on('GET', '/v3/pay/transactions/out-trade-no/S20250314120301A', () => ({ body: paid() }));
    fake.on('GET', '/v3/pay/transactions/id/', () => ({ body: paid() }));
    fake.on('POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', () => ({ status: 204 }));
    await expect(c.createNative({ ...request(), mchid: '1900000109' })).rejects.toMatchObject({ field: '/mchid' });
    expect(fake.requests).toHaveLength(0);
    expect(await c.createNative(request())).toEqual({ code_url: 'weixin://m' });
    expect((await c.queryNative('S20250314120301A')).trade_state).toBe('SUCCESS');
    expect((await c.queryNativeById('4200002601202503141234567890')).out_trade_no).toBe('S20250314120301A');
    await c.closeNative('S20250314120301A');
    expect(fake.requests.map((r) => [r.method, r.url, r.signatureOk, r.headers.authorization?.includes(`mchid="${MCHID}"`)])).toEqual([
      ['POST', '/v3/pay/transactions/native', true, true],
      ['GET', `/v3/pay/transactions/out-trade-no/S20250314120301A?mchid=${MCHID}`, true, true],
      ['GET', `/v3/pay/transactions/id/4200002601202503141234567890?mchid=${MCHID}`, true, true],
      ['POST', '/v3/pay/transactions/out-trade-no/S20250314120301A/close', true, true],
    ]);
  });

  it('createRefund / queryRefund / parseNotifyRequest', async () => {
    const c = client();
    const refund = { refund_id: '5000', out_refund_no: 'R20250315093000A1', transaction_id: '4200002601202503141234567890', out_trade_no: 'S20250314120301A', status: 'SUCCESS', amount: { total: 2800, refund: 2800 } };
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ body: refund }));
    fake.on('GET', '/v3/refund/domestic/refunds/R20250315093000A1', () => ({ body: refund }));
    expect((await c.createRefund({ out_trade_no: 'S20250314120301A', out_refund_no: 'R20250315093000A1', amount: { refund: 2800, total: 2800, currency: 'CNY' } })).status).toBe('SUCCESS');
    expect((await c.queryRefund('R20250315093000A1')).amount.refund).toBe(2800);
    const body = Buffer.from(JSON.stringify({
      id: 'EV-1', create_time: '2025-03-15T09:30:05+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS',
      resource: { original_type: 'transaction', ...encryptResource(JSON.stringify(paid()), apiKey(), 'transaction') },
    }));
    const n = await c.parseNotifyRequest(signBody(wx.privateKey, PUB_ID, body), body);
    expect(n.kind).toBe('transaction');
    expect(n.resource).toMatchObject({ out_trade_no: 'S20250314120301A', amount: { total: 2800 } });
  });
});
