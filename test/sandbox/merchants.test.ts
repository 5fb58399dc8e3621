/** Every merchant signs for itself: per-merchant keys written by init, requests authenticated as the signer, answers signed with its keys. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decryptResource } from '../../shared/wechatpay/aead';
import { beijingDate } from '../../shared/wechatpay/time';
import { parseTradeBillText } from '../../shared/wechatpay/bill-parser';
import { combineRequest, manualAuthorization, sandboxGet, sandboxPost, send, setup, type Env } from './helpers';

const Q = (no: string) => `/v3/combine-transactions/out-trade-no/${no}`;
const CREATE = '/v3/combine-transactions/native';

describe('a mixed setup: initiator public key, participants public key / certificates / none / default', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup({ modes: { initiator: 'public_key', participants: ['public_key', 'certificates', 'none'] } });
  });
  afterAll(() => env.close());

  it('init writes each participant with keys of its own in merchant/merchants/<mchid>, none for "none"', () => {
    const [pk, cert, none, dflt] = env.init.participants;
    expect([pk!.mode, cert!.mode, none!.mode, dflt!.mode]).toEqual(['public_key', 'certificates', 'none', 'public_key']);
    expect(pk!.dir).toBe(join(env.init.merchantDir, 'merchants', pk!.mchid));
    expect(none!.dir).toBeNull();
    expect(existsSync(join(env.init.merchantDir, 'merchants', none!.mchid))).toBe(false);
    expect(existsSync(join(pk!.dir!, 'wechatpay_public_key.pem'))).toBe(true);
    expect(existsSync(join(cert!.dir!, 'wechatpay_public_key.pem'))).toBe(false);
    const jsons = [env.init.merchantDir, pk!.dir!, cert!.dir!, dflt!.dir!].map((d) => JSON.parse(readFileSync(join(d, 'merchant.json'), 'utf8')));
    // Each merchant its own API certificate serial, APIv3 key and (public-key mode) PUB_KEY_ID.
    expect(new Set(jsons.map((j) => j.cert_serial)).size).toBe(4);
    expect(new Set(jsons.map((j) => j.apiv3_key)).size).toBe(4);
    expect(new Set(jsons.filter((j) => j.wechatpay_public_key_id).map((j) => j.wechatpay_public_key_id)).size).toBe(3);
    expect(Object.keys(jsons[1]!).sort()).toEqual(['apiv3_key', 'cert_serial', 'mchid', 'wechatpay_public_key_id']);
    expect(Object.keys(jsons[2]!).sort()).toEqual(['apiv3_key', 'cert_serial', 'mchid']);
    for (const [i, d] of [pk!.dir!, cert!.dir!, dflt!.dir!].entries()) {
      expect(new X509Certificate(readFileSync(join(d, 'apiclient_cert.pem'))).serialNumber.toUpperCase()).toBe(jsons[i + 1]!.cert_serial);
    }
    // The root keeps sub_merchants with catalogs (all four, with keys or not).
    expect(jsons[0]!.sub_merchants.map((m: { mchid: string }) => m.mchid)).toEqual(env.participants);
    expect(jsons[0]!.sub_merchants.every((m: { catalog: unknown[] }) => m.catalog.length > 0)).toBe(true);
  });

  it('init writes owner-only files and folders', () => {
    const cert = env.init.participants[1]!;
    for (const f of ['sandbox/sandbox.json', 'sandbox/wechatpay_private_key.pem', `sandbox/merchants/${cert.mchid}/platform_1_key.pem`, 'merchant/merchant.json', 'merchant/apiclient_key.pem', `merchant/merchants/${cert.mchid}/merchant.json`]) {
      expect(statSync(join(env.dir, f)).mode & 0o777, f).toBe(0o600);
    }
    for (const d of ['.', 'sandbox', 'merchant', 'merchant/merchants', `merchant/merchants/${cert.mchid}`, `sandbox/merchants/${cert.mchid}`]) {
      expect(statSync(join(env.dir, d)).mode & 0o777, d).toBe(0o700);
    }
  });

  it('authenticates each request as its signer, with that merchant key; answers signed with its own WeChat Pay key', async () => {
    const [pk, cert, none] = env.participants;
    const own = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { as: pk });
    expect([own.status, own.json.code]).toEqual([404, 'ORDER_NOT_EXIST']);
    expect(own.headers.get('wechatpay-serial')).toBe(env.merchants.get(pk!)!.wechatpayPublicKey!.id);
    await env.verifier.verify(Object.fromEntries(own.headers.entries()), own.raw);
    // Certificate mode: its newest platform certificate, not the initiator's public key.
    const c = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { as: cert });
    expect(c.json.code).toBe('ORDER_NOT_EXIST');
    const certs = await send(env, 'GET', '/v3/certificates', undefined, { as: cert });
    expect(certs.status).toBe(200);
    const serials = certs.json.data.map((d: { serial_no: string }) => d.serial_no);
    expect(serials).toContain(c.headers.get('wechatpay-serial'));
    // Encrypted with ITS APIv3 key: the initiator's cannot open them.
    const first = certs.json.data[0].encrypt_certificate;
    expect(new X509Certificate(decryptResource(first, env.merchants.get(cert!)!.apiV3Key)).serialNumber.toUpperCase()).toBe(certs.json.data[0].serial_no);
    expect(() => decryptResource(first, env.creds.apiV3Key)).toThrow();
    // The initiator (public-key mode) has no certificates.
    expect((await send(env, 'GET', '/v3/certificates')).json.code).toBe('RESOURCE_NOT_EXISTS');
    // A participant without keys: WeChat Pay has nothing to check its signature with.
    const stranger = manualAuthorization(env, 'GET', Q('NOSUCHORDER01'), '', { mchid: none, as: pk });
    const r = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { authorization: stranger });
    expect([r.status, r.json.code]).toEqual([401, 'SIGN_ERROR']);
  });

  it("refuses a signature made with another merchant's key (401 SIGN_ERROR), whichever serial it names", async () => {
    const [pk, cert] = env.participants;
    const other = env.merchants.get(cert!)!;
    // pk's mchid and serial, cert's key.
    let res = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { authorization: manualAuthorization(env, 'GET', Q('NOSUCHORDER01'), '', { as: pk, key: other.privateKey }) });
    expect([res.status, res.json.code]).toEqual([401, 'SIGN_ERROR']);
    expect(res.json.message).toMatch(/签名错误/);
    // pk's mchid, cert's serial and key.
    res = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { authorization: manualAuthorization(env, 'GET', Q('NOSUCHORDER01'), '', { as: cert, mchid: pk }) });
    expect([res.status, res.json.code]).toEqual([401, 'SIGN_ERROR']);
    expect(res.json.message).toMatch(/serial_no/);
    // The initiator's mchid signed with a participant's key and serial.
    res = await send(env, 'GET', Q('NOSUCHORDER01'), undefined, { authorization: manualAuthorization(env, 'GET', Q('NOSUCHORDER01'), '', { as: pk, mchid: env.creds.mchid }) });
    expect([res.status, res.json.code]).toEqual([401, 'SIGN_ERROR']);
    const log = (await sandboxGet(env, `/sandbox/requests?mchid=${pk}`)).requests;
    expect(log.some((e: any) => e.authenticated && e.serial_no === env.merchants.get(pk!)!.certSerial)).toBe(true);
    expect(log.filter((e: any) => !e.authenticated).map((e: any) => e.status)).toContain(401);
  });

  it('combine orders belong to their initiator: a participant can neither create for it, query nor close its order', async () => {
    const [pk] = env.participants;
    const req = combineRequest(env);
    expect((await send(env, 'POST', CREATE, req)).status).toBe(200);
    const asOther = await send(env, 'POST', CREATE, req, { as: pk });
    expect([asOther.status, asOther.json.code, asOther.json.detail.field]).toEqual([400, 'PARAM_ERROR', '/combine_mchid']);
    const q = await send(env, 'GET', Q(req.combine_out_trade_no), undefined, { as: pk });
    expect([q.status, q.json.code]).toEqual([404, 'ORDER_NOT_EXIST']);
    const close = { combine_appid: env.creds.appid, sub_orders: req.sub_orders.map((s) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no })) };
    const c = await send(env, 'POST', `${Q(req.combine_out_trade_no)}/close`, close, { as: pk });
    expect([c.status, c.json.code]).toEqual([404, 'ORDER_NOT_EXIST']);
    expect((await send(env, 'GET', Q(req.combine_out_trade_no))).json.combine_mchid).toBe(env.creds.mchid);
  });

  it("each merchant's bill holds its own rows only; sub_mchid is refused; the log shows who applied", async () => {
    const [pk, cert, , dflt] = env.participants;
    const day = beijingDate(Date.now());
    const orders = [];
    for (const pair of [[pk, cert], [cert, dflt], [pk, dflt]]) {
      const req = combineRequest(env);
      req.sub_orders[0]!.mchid = pair[0]!;
      req.sub_orders[1]!.mchid = pair[1]!;
      const c = await send(env, 'POST', CREATE, req);
      expect((await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false })).status).toBe(200);
      orders.push(req);
    }
    await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 36 * 3600 });
    try {
      for (const m of [pk!, cert!, dflt!]) {
        const apply = await send(env, 'GET', `/v3/bill/tradebill?bill_date=${day}`, undefined, { as: m });
        expect(apply.status).toBe(200);
        await env.verifier.verify(Object.fromEntries(apply.headers.entries()), apply.raw);
        const u = new URL(apply.json.download_url);
        const text = (await send(env, 'GET', u.pathname + u.search, undefined, { as: m })).raw.toString('utf8');
        const bill = parseTradeBillText(text);
        const expected = orders.flatMap((o) => o.sub_orders).filter((s) => s.mchid === m).map((s) => s.out_trade_no).sort();
        expect(bill.records.map((r) => r.out_trade_no).sort()).toEqual(expected);
        expect(bill.records.every((r) => r.mchid === m)).toBe(true);
      }
      const sub = await send(env, 'GET', `/v3/bill/tradebill?bill_date=${day}&sub_mchid=${pk}`);
      expect([sub.status, sub.json.code, sub.json.detail.field]).toEqual([400, 'PARAM_ERROR', 'sub_mchid']);
      // The initiator is not a participant here: it has no rows.
      expect((await send(env, 'GET', `/v3/bill/tradebill?bill_date=${day}`)).json.code).toBe('NO_STATEMENT_EXIST');
      const log = (await sandboxGet(env, '/sandbox/requests?path=/v3/bill/tradebill')).requests;
      const byCert = log.filter((e: any) => e.mchid === cert && e.status === 200);
      expect(byCert).toHaveLength(1);
      expect(byCert[0]).toMatchObject({ method: 'GET', authenticated: true, serial_no: env.merchants.get(cert!)!.certSerial });
    } finally {
      await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 0 });
    }
  });
});

describe('an old single-merchant sandbox folder', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup();
    // What init wrote before per-merchant keys: no version, no participants.
    const path = join(env.dir, 'sandbox', 'sandbox.json');
    const cfg = JSON.parse(readFileSync(path, 'utf8'));
    delete cfg.version;
    delete cfg.participants;
    writeFileSync(path, JSON.stringify(cfg));
    await env.restart();
  });
  afterAll(() => env.close());

  it('still serves the initiator; participants sell in its orders but their own signatures are refused', async () => {
    const req = combineRequest(env);
    const c = await send(env, 'POST', CREATE, req);
    expect(c.status).toBe(200);
    expect((await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false })).status).toBe(200);
    const r = await send(env, 'GET', Q(req.combine_out_trade_no), undefined, { as: env.participants[0] });
    expect([r.status, r.json.code]).toEqual([401, 'SIGN_ERROR']);
    expect(r.json.message).toMatch(/no API certificate/);
  });
});
