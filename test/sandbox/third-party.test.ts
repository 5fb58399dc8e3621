/** Another APIv3 client (wechatpay-axios-plugin, a public SDK) works against the sandbox unchanged. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Wechatpay } from 'wechatpay-axios-plugin';
import { combineRequest, sandboxPost, setup, type Env } from './helpers';

let env: Env;
let wxpay: any;
beforeAll(async () => {
  env = await setup();
  const m = join(env.dir, 'merchant');
  const mj = JSON.parse(readFileSync(join(m, 'merchant.json'), 'utf8'));
  // The SDK signs requests and verifies every answer against `certs` by Wechatpay-Serial.
  wxpay = new Wechatpay({
    mchid: mj.mchid,
    serial: mj.cert_serial,
    privateKey: readFileSync(join(m, 'apiclient_key.pem')),
    certs: { [mj.wechatpay_public_key_id]: readFileSync(join(m, 'wechatpay_public_key.pem')) },
    baseURL: env.url + '/',
  } as any);
});
afterAll(() => env.close());

describe('wechatpay-axios-plugin against the sandbox', () => {
  it('creates, queries and sees the payment; refusals come back as documented', async () => {
    const req = combineRequest(env);
    const created = await wxpay.v3.combineTransactions.native.post(req);
    expect(created.status).toBe(200);
    expect(created.data.code_url).toMatch(/^weixin:\/\//);
    const byNo = () => wxpay.v3.combineTransactions.outTradeNo._combine_out_trade_no_.get({ combine_out_trade_no: req.combine_out_trade_no });
    expect((await byNo()).data.sub_orders[0].trade_state).toBe('NOTPAY');
    await sandboxPost(env, '/sandbox/pay', { code_url: created.data.code_url, notify: false });
    expect((await byNo()).data.sub_orders.map((s: any) => s.trade_state)).toEqual(['SUCCESS', 'SUCCESS']);
    const missing = await wxpay.v3.combineTransactions.outTradeNo._combine_out_trade_no_.get({ combine_out_trade_no: 'NOSUCHORDER01' }).catch((e: any) => e.response);
    expect([missing.status, missing.data.code]).toEqual([404, 'ORDER_NOT_EXIST']);
  });

  it('its response verification rejects an injected bad signature', async () => {
    const req = combineRequest(env);
    await wxpay.v3.combineTransactions.native.post(req);
    await sandboxPost(env, '/sandbox/control/faults', { kind: 'BAD_SIGNATURE', method: 'GET', count: 1 });
    await expect(wxpay.v3.combineTransactions.outTradeNo._combine_out_trade_no_.get({ combine_out_trade_no: req.combine_out_trade_no })).rejects.toThrow(/Verify the response.s data with/);
    // The next answer is signed properly again.
    expect((await wxpay.v3.combineTransactions.outTradeNo._combine_out_trade_no_.get({ combine_out_trade_no: req.combine_out_trade_no })).status).toBe(200);
  });
});
