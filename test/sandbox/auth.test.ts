/** Raw HTTP requests signed wrongly in each possible way: each refused with the right error. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { AUTH_SCHEME } from '../../shared/wechatpay/sign';
import { combineRequest, manualAuthorization, send, setup, unixNow, type Env } from './helpers';

let env: Env;
beforeAll(async () => {
  env = await setup();
});
afterAll(() => env.close());

const Q = (no = 'NOSUCHORDER01') => `/v3/combine-transactions/out-trade-no/${no}`;
const CREATE = '/v3/combine-transactions/native';

async function expectSignError(res: { status: number; json: any }, fragment?: RegExp) {
  expect(res.status).toBe(401);
  expect(res.json.code).toBe('SIGN_ERROR');
  if (fragment) expect(res.json.message).toMatch(fragment);
}

describe('request authorization', () => {
  it('accepts a correctly signed GET and POST (control case)', async () => {
    expect((await send(env, 'GET', Q())).json.code).toBe('ORDER_NOT_EXIST');
    const res = await send(env, 'POST', CREATE, combineRequest(env));
    expect(res.status).toBe(200);
    expect(res.json.code_url).toMatch(/^weixin:\/\/wxpay\/bizpayurl\/up\?pr=/);
  });

  it('refuses a missing Authorization header', async () => {
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: null }), /Authorization/);
  });

  it('refuses another scheme and a garbled header', async () => {
    const good = manualAuthorization(env, 'GET', Q(), '');
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: good.replace(AUTH_SCHEME, 'WECHATPAY2-SHA256-RSA4096') }), /scheme/);
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: good.replace(/,signature="[^"]*"/, '') }), /格式/);
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: `${AUTH_SCHEME} garbage` }));
  });

  it('refuses an unknown mchid with 400 MCH_NOT_EXISTS', async () => {
    const res = await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { mchid: '1900000001' }) });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('MCH_NOT_EXISTS');
  });

  it('refuses a serial_no that is not the merchant certificate serial', async () => {
    const res = await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { serial_no: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1' }) });
    await expectSignError(res, /serial_no/);
  });

  it('accepts the serial in lower case (serials are hex)', async () => {
    const res = await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { serial_no: env.creds.certSerial.toLowerCase() }) });
    expect(res.json.code).toBe('ORDER_NOT_EXIST');
  });

  it('refuses timestamps outside ±300 s, and non-numeric ones, but accepts 299 s', async () => {
    for (const ts of [String(unixNow() - 301), String(unixNow() + 400), String((unixNow() - 10) * 1000), 'yesterday']) {
      await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { timestamp: ts }) }), /timestamp/);
    }
    const ok = await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { timestamp: String(unixNow() - 290) }) });
    expect(ok.json.code).toBe('ORDER_NOT_EXIST');
  });

  it('refuses a signature by another key', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { key: privateKey }) }), /签名错误/);
  });

  it('refuses a signature over another method, path, query or body', async () => {
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { signedMethod: 'POST' }) }));
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: manualAuthorization(env, 'GET', Q(), '', { signedUrl: Q('OTHERORDER01') }) }));
    // The query string is part of the signed URL.
    const bill = '/v3/bill/tradebill?bill_date=2026-01-01';
    await expectSignError(await send(env, 'GET', bill, undefined, { authorization: manualAuthorization(env, 'GET', bill, '', { signedUrl: '/v3/bill/tradebill' }) }));
    // A body re-serialized with other whitespace is other bytes.
    const req = combineRequest(env);
    const sent = JSON.stringify(req);
    await expectSignError(await send(env, 'POST', CREATE, sent, { authorization: manualAuthorization(env, 'POST', CREATE, sent, { signedBody: JSON.stringify(req, null, 1) }) }));
  });

  it('refuses a nonce or timestamp differing from the signed ones', async () => {
    const good = manualAuthorization(env, 'GET', Q(), '');
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: good.replace(/nonce_str="[^"]*"/, 'nonce_str="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"') }));
    const ts = Number(/timestamp="(\d+)"/.exec(good)![1]);
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: good.replace(/timestamp="\d+"/, `timestamp="${ts - 1}"`) }));
  });

  it('refuses probes and non-Base64 signatures', async () => {
    const good = manualAuthorization(env, 'GET', Q(), '');
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: good.replace(/signature="[^"]*"/, 'signature="WECHATPAY/SIGNTEST/abc"') }));
    await expectSignError(await send(env, 'GET', Q(), undefined, { authorization: good.replace(/signature="[^"]*"/, 'signature="%%%not base64%%%"') }));
  });

  it('refuses requests without Accept or User-Agent with 400 INVALID_REQUEST', async () => {
    for (const h of ['Accept', 'User-Agent']) {
      const res = await send(env, 'GET', Q(), undefined, { omit: [h] });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('INVALID_REQUEST');
      expect(res.json.message).toContain('Accept或User-Agent');
    }
  });

  it('signs error answers too, and every answer carries a Request-ID', async () => {
    const res = await send(env, 'GET', Q(), undefined, { authorization: null });
    expect(res.headers.get('request-id')).toBeTruthy();
    const h = Object.fromEntries(res.headers.entries());
    await expect(env.verifier.verify(h, res.raw)).resolves.toMatchObject({ serial: env.creds.wechatpayPublicKey!.id });
  });
});
