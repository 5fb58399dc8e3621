import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { gzipSync } from 'node:zlib';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { closeRequestFor } from '../../shared/wechatpay/combine';
import { ApiError, TransportError, ValidationError, VerificationError } from '../../shared/wechatpay/errors';
import { encryptResource } from '../../shared/wechatpay/aead';
import { signBody } from '../../shared/wechatpay/sign';
import { formatBeijing } from '../../shared/wechatpay/time';
import { formatTradeBill, paymentBillRecord } from '../../shared/wechatpay/bill-writer';
import type { CombineNativeRequest } from '../../shared/wechatpay/models';
import { startFakeWechatPay, type FakeWechatPay } from './helpers/fake-wechatpay';
import { apiKey, rsaPair } from './helpers/keys';

const merchant = rsaPair();
const wx = rsaPair();
const PUB_ID = 'PUB_KEY_ID_0119000001092025';
let fake: FakeWechatPay;

function client(over: Partial<ConstructorParameters<typeof WechatPayClient>[0]> = {}) {
  return new WechatPayClient({
    mchid: '1900000109', certSerial: '3775B6A45ACD588826D15E583A95F5DD3E4C9D9B', privateKey: merchant.privateKey, apiV3Key: apiKey(),
    wechatpayPublicKey: { id: PUB_ID, key: wx.publicKey }, baseUrl: fake.url, backoffBaseMs: 5, timeoutMs: 15_000, ...over,
  });
}

const EXPIRE = formatBeijing(Date.now() + 3600_000);
const order = (): CombineNativeRequest => ({
  combine_appid: 'wxd678efh567hg6787', combine_mchid: '1900000109', combine_out_trade_no: 'C20250314120301',
  scene_info: { device_id: 'POS0001', payer_client_ip: '10.0.0.8' },
  sub_orders: [
    { mchid: '1900000109', attach: 'C20250314120301', amount: { total_amount: 3800, currency: 'CNY' }, out_trade_no: 'S20250314120301A', description: '门店A-午餐套餐' },
    { mchid: '1900000110', attach: 'C20250314120301', amount: { total_amount: 1250, currency: 'CNY' }, out_trade_no: 'S20250314120301B', description: '门店A-饮品' },
  ],
  time_expire: EXPIRE,
  notify_url: 'https://pos.example.com/wechatpay/notify',
});

const queryResult = {
  combine_appid: 'wxd678efh567hg6787', combine_mchid: '1900000109', combine_out_trade_no: 'C20250314120301', future_field: 1,
  sub_orders: [
    { mchid: '1900000109', trade_type: 'NATIVE', trade_state: 'SUCCESS', transaction_id: '4200002601202503141234567890', out_trade_no: 'S20250314120301A', amount: { total_amount: 3800, currency: 'CNY', payer_amount: 3800 } },
    { mchid: '1900000110', trade_type: 'NATIVE', trade_state: 'SUCCESS', transaction_id: '4200002601202503149876543210', out_trade_no: 'S20250314120301B', amount: { total_amount: 1250, currency: 'CNY' } },
  ],
};

beforeAll(async () => {
  fake = await startFakeWechatPay({ merchantPublicKey: merchant.publicKey, signer: { serial: PUB_ID, key: wx.privateKey } });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
});

describe('combine Native create/query/close over real HTTP', () => {
  it('create: signs exactly the bytes it sends, with the required headers, and returns code_url', async () => {
    fake.on('POST', '/v3/combine-transactions/native', () => ({ body: { code_url: 'weixin://wxpay/bizpayurl/up?pr=NwY5Mz9&groupid=00' } }));
    const res = await client().combineNative(order());
    expect(res.code_url).toBe('weixin://wxpay/bizpayurl/up?pr=NwY5Mz9&groupid=00');
    expect(fake.requests).toHaveLength(1);
    const r = fake.requests[0]!;
    expect(r.signatureOk).toBe(true);
    expect(r.url).toBe('/v3/combine-transactions/native');
    expect(r.headers.accept).toBe('application/json');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['user-agent']).toMatch(/\S/);
    expect(r.headers['wechatpay-serial']).toBe(PUB_ID);
    expect(r.headers.authorization).toMatch(/^WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="[0-9A-Za-z]{32}",timestamp="\d{10}",serial_no="3775B6A45ACD588826D15E583A95F5DD3E4C9D9B",signature="/);
    const sent = JSON.parse(r.body.toString('utf8'));
    expect(sent).toEqual(order() as unknown as Record<string, unknown>);
    expect(r.body.toString('utf8')).toContain('"time_expire":"');
    expect(sent.time_expire).toMatch(/\+08:00$/);
  });

  it('bad input is refused before anything is sent, naming the field', async () => {
    const c = client();
    const bad: [string, (o: CombineNativeRequest) => void][] = [
      ['/sub_orders', (o) => { o.sub_orders = o.sub_orders.slice(0, 1); }],
      ['/sub_orders', (o) => { o.sub_orders = Array.from({ length: 11 }, (_, i) => ({ ...o.sub_orders[0]!, out_trade_no: `S2025031412030${String(i).padStart(2, '0')}` })); }],
      ['/sub_orders/1/amount/total_amount', (o) => { o.sub_orders[1]!.amount.total_amount = 0; }],
      ['/sub_orders/1/amount/total_amount', (o) => { o.sub_orders[1]!.amount.total_amount = 12.5; }],
      ['/sub_orders/0/amount/total_amount', (o) => { o.sub_orders[0]!.amount.total_amount = -1; }],
      ['/sub_orders/0/amount/currency', (o) => { (o.sub_orders[0]!.amount as { currency: string }).currency = 'USD'; }],
      ['/sub_orders/0/description', (o) => { o.sub_orders[0]!.description = '饮'.repeat(43); }], // 129 bytes
      ['/sub_orders/0/description', (o) => { o.sub_orders[0]!.description = '咖啡☕️😀'; }],
      ['/sub_orders/0/attach', (o) => { o.sub_orders[0]!.attach = '合'.repeat(43); }], // 129 bytes, 43 chars
      ['/sub_orders/0/attach', (o) => { (o.sub_orders[0] as { attach?: string }).attach = undefined; }],
      ['/sub_orders/0/out_trade_no', (o) => { o.sub_orders[0]!.out_trade_no = 'S1'; }],
      ['/sub_orders/0/out_trade_no', (o) => { o.sub_orders[0]!.out_trade_no = 'S2025|0314'; }],
      ['/sub_orders/1/out_trade_no', (o) => { o.sub_orders[1]!.out_trade_no = o.sub_orders[0]!.out_trade_no; }],
      ['/combine_out_trade_no', (o) => { o.combine_out_trade_no = 'C'.repeat(33); }],
      ['/time_expire', (o) => { o.time_expire = new Date().toISOString(); }],
      ['/time_expire', (o) => { o.time_expire = '2025-02-30T10:00:00+08:00'; }],
      ['/notify_url', (o) => { o.notify_url = 'https://pos.example.com/notify?x=1'; }],
      ['/notify_url', (o) => { o.notify_url = 'pos.example.com/notify'; }],
      ['/scene_info/payer_client_ip', (o) => { o.scene_info = { payer_client_ip: 'not-an-ip' }; }],
      ['/scene_info/device_id', (o) => { o.scene_info = { device_id: 'POS-0000000000001', payer_client_ip: '10.0.0.1' }; }],
      ['/combine_mchid', (o) => { o.combine_mchid = '1900000110'; }],
    ];
    for (const [field, mutate] of bad) {
      const o = order();
      mutate(o);
      const err = await c.combineNative(o).catch((e) => e);
      expect(err, field).toBeInstanceOf(ValidationError);
      expect(err.field, err.message).toBe(field);
    }
    // 42 characters of 3-byte UTF-8 (126 bytes) are fine: the limit is 127 bytes (safe reading).
    fake.on('POST', '/v3/combine-transactions/native', () => ({ body: { code_url: 'weixin://x' } }));
    const ok = order();
    ok.sub_orders[0]!.description = '饮'.repeat(42);
    await c.combineNative(ok);
    expect(fake.requests).toHaveLength(1);
  });

  it('query: typed result, unknown fields kept; a malformed answer is an error', async () => {
    fake.on('GET', '/v3/combine-transactions/out-trade-no/C20250314120301', () => ({ body: queryResult }));
    const r = await client().combineQuery('C20250314120301');
    expect(r.sub_orders.map((s) => s.trade_state)).toEqual(['SUCCESS', 'SUCCESS']);
    expect((r as unknown as { future_field: number }).future_field).toBe(1);
    expect(fake.requests[0]!.url).toBe('/v3/combine-transactions/out-trade-no/C20250314120301');
    expect(fake.requests[0]!.body.length).toBe(0);
    fake.on('GET', '/v3/combine-transactions/out-trade-no/C20250314120302', () => ({ body: { combine_out_trade_no: 'C20250314120302' } }));
    await expect(client().combineQuery('C20250314120302')).rejects.toMatchObject({ code: 'RESPONSE_MALFORMED' });
    await expect(client().combineQuery('bad/../no')).rejects.toBeInstanceOf(ValidationError);
  });

  it('close: 204 with a verified empty body; exactly the sub-orders of creation are sent', async () => {
    fake.on('POST', '/v3/combine-transactions/out-trade-no/C20250314120301/close', () => ({ status: 204 }));
    await client().combineClose('C20250314120301', closeRequestFor(order()));
    expect(JSON.parse(fake.requests[0]!.body.toString())).toEqual({
      combine_appid: 'wxd678efh567hg6787',
      sub_orders: [{ mchid: '1900000109', out_trade_no: 'S20250314120301A' }, { mchid: '1900000110', out_trade_no: 'S20250314120301B' }],
    });
  });

  it('close: ORDER_CLOSED counts as closed, USERPAYING (202) and ORDERPAID are errors', async () => {
    const path = '/v3/combine-transactions/out-trade-no/C20250314120301/close';
    fake.on('POST', path, () => ({ status: 400, body: { code: 'ORDER_CLOSED', message: '订单已关闭' }, signer: null }));
    await expect(client().combineClose('C20250314120301', closeRequestFor(order()))).resolves.toBeUndefined();
    fake.on('POST', path, () => ({ status: 202, body: { code: 'USERPAYING', message: '用户支付中' } }));
    await expect(client().combineClose('C20250314120301', closeRequestFor(order()))).rejects.toMatchObject({ status: 202, code: 'USERPAYING', retryable: false });
    fake.on('POST', path, () => ({ status: 403, body: { code: 'ORDERPAID', message: '订单已支付' }, signer: null }));
    await expect(client().combineClose('C20250314120301', closeRequestFor(order()))).rejects.toMatchObject({ status: 403, code: 'ORDERPAID', retryable: false });
    await expect(client().combineClose('C20250314120301', { combine_appid: 'wx', sub_orders: [{ mchid: '1900000109', out_trade_no: 'S20250314120301A' }] })).rejects.toMatchObject({ field: '/sub_orders' });
  });
});

describe('response verification', () => {
  const path = '/v3/combine-transactions/out-trade-no/C20250314120301';

  it('a tampered, unsigned, stale or unknown-serial answer is an error and its content is not used', async () => {
    const cases: [Parameters<FakeWechatPay['on']>[2], string][] = [
      [() => ({ body: queryResult, tamper: (b) => Buffer.from(b.toString().replace('3800', '3801')) }), 'SIGNATURE_INVALID'],
      [() => ({ body: queryResult, signer: null }), 'HEADER_MISSING'],
      [() => ({ body: queryResult, timestampOffset: -301 }), 'TIMESTAMP_EXPIRED'],
      [() => ({ body: queryResult, timestampOffset: 400 }), 'TIMESTAMP_EXPIRED'],
      [() => ({ body: queryResult, signer: { serial: 'PUB_KEY_ID_0000', key: wx.privateKey } }), 'SERIAL_UNKNOWN'],
      [() => ({ body: queryResult, signer: { serial: PUB_ID, key: merchant.privateKey } }), 'SIGNATURE_INVALID'],
    ];
    for (const [handler, code] of cases) {
      fake.requests.length = 0;
      fake.on('GET', path, handler);
      const err = await client().combineQuery('C20250314120301').catch((e) => e);
      expect(err, code).toBeInstanceOf(VerificationError);
      expect(err.code).toBe(code);
      expect(fake.requests).toHaveLength(1); // not retried
    }
  });

  it('a signature probe is refused; the identical request is asked again', async () => {
    let n = 0;
    fake.on('GET', path, () => ({ body: queryResult, probe: n++ === 0 }));
    const r = await client().combineQuery('C20250314120301');
    expect(r.combine_out_trade_no).toBe('C20250314120301');
    expect(fake.requests).toHaveLength(2);
    fake.requests.length = 0;
    fake.on('GET', path, () => ({ body: queryResult, probe: true }));
    await expect(client({ maxRetries: 1 }).combineQuery('C20250314120301')).rejects.toMatchObject({ code: 'SIGNATURE_PROBE' });
    expect(fake.requests).toHaveLength(2);
  });
});

describe('errors, retries, timeouts, failover', () => {
  const path = '/v3/combine-transactions/native';

  it('PARAM_ERROR: typed ApiError with status, code, message, detail; not retried', async () => {
    const detail = { field: '/sub_orders/0/amount/total_amount', value: 0, issue: 'must be > 0', location: 'body' };
    fake.on('POST', path, () => ({ status: 400, body: { code: 'PARAM_ERROR', message: '参数错误', detail }, signer: null }));
    const err = await client().combineNative(order()).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'PARAM_ERROR', message: '参数错误', detail, retryable: false });
    expect(err.requestId).toMatch(/^08F/);
    expect(fake.requests).toHaveLength(1);
  });

  it('SYSTEM_ERROR and 5xx are retried a bounded number of times with the identical body and fresh signatures', async () => {
    fake.on('POST', path, () => ({ status: 500, body: { code: 'SYSTEM_ERROR', message: '系统错误' }, signer: null }));
    const err = await client({ maxRetries: 2 }).combineNative(order()).catch((e) => e);
    expect(err).toMatchObject({ status: 500, code: 'SYSTEM_ERROR', retryable: true });
    expect(fake.requests).toHaveLength(3);
    expect(new Set(fake.requests.map((r) => r.body.toString())).size).toBe(1);
    expect(new Set(fake.requests.map((r) => r.nonce)).size).toBe(3);
    expect(fake.requests.every((r) => r.signatureOk)).toBe(true);
  });

  it('FREQUENCY_LIMITED is retried and then succeeds; SIGN_ERROR is not retried', async () => {
    let n = 0;
    fake.on('POST', path, () => (n++ === 0 ? { status: 429, body: { code: 'FREQUENCY_LIMITED', message: '频率超限' }, signer: null } : { body: { code_url: 'weixin://ok' } }));
    await expect(client().combineNative(order())).resolves.toEqual({ code_url: 'weixin://ok' });
    expect(fake.requests).toHaveLength(2);
    fake.requests.length = 0;
    const stranger = rsaPair();
    const err = await client({ privateKey: stranger.privateKey }).combineNative(order()).catch((e) => e);
    expect(err).toMatchObject({ status: 401, code: 'SIGN_ERROR', retryable: false });
    expect(fake.requests).toHaveLength(1);
  });

  it('a call that takes too long fails with TransportError TIMEOUT', async () => {
    fake.on('POST', path, () => ({ body: { code_url: 'weixin://late' }, delayMs: 400 }));
    const err = await client({ timeoutMs: 100, maxRetries: 0 }).combineNative(order()).catch((e) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ code: 'TIMEOUT', retryable: true });
  });

  it('fails over to the backup host after a network error or a 5xx', async () => {
    const dead = await new Promise<string>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(`http://127.0.0.1:${port}`));
      });
    });
    fake.on('POST', path, () => ({ body: { code_url: 'weixin://backup' } }));
    await expect(client({ baseUrl: dead, backupBaseUrl: fake.url }).combineNative(order())).resolves.toEqual({ code_url: 'weixin://backup' });
    expect(fake.requests).toHaveLength(1);
    // Without a backup the network error surfaces, typed.
    await expect(client({ baseUrl: dead, maxRetries: 1 }).combineNative(order())).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });
});

describe('trade bills over HTTP', () => {
  const rows = Array.from({ length: 20 }, (_, i) => paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000110', transaction_id: `4200${i}`, out_trade_no: `S2025${1000 + i}`, total_fee: 100 * (i + 1), attach: 'C2025', description: '饮品' }));
  const file = Buffer.from(formatTradeBill(rows, { bom: true }), 'utf8');
  const hash = createHash('sha1').update(file).digest('hex');

  function serveBill(hashValue: string) {
    fake.on('GET', '/v3/bill/tradebill', (r) => ({ body: { hash_type: 'SHA1', hash_value: hashValue, download_url: `https://api.mch.weixin.qq.com/v3/billdownload/file?token=T${r.url.includes('GZIP') ? 'gz' : 'pl'}` } }));
    // The file answer is not signed (§6.2).
    fake.on('GET', '/v3/billdownload/file', (r) => ({ body: r.url.endsWith('gz') ? gzipSync(file) : file, signer: null, headers: { 'Content-Type': 'application/octet-stream' } }));
  }

  it('apply (signed query string) + streamed gzip download (signed, hash checked) → typed records and summary', async () => {
    serveBill(hash);
    const { records, summary } = await client().fetchTradeBill({ bill_date: '2025-03-14', tar_type: 'GZIP' });
    expect(records).toHaveLength(20);
    expect(records[19]).toMatchObject({ out_trade_no: 'S20251019', total_fee: 2000, mchid: '1900000110' });
    expect(summary.total_fee).toBe(21000);
    expect(fake.requests.map((r) => r.url)).toEqual(['/v3/bill/tradebill?bill_date=2025-03-14&tar_type=GZIP', '/v3/billdownload/file?token=Tgz']);
    expect(fake.requests.every((r) => r.signatureOk)).toBe(true);
  });

  it('streams records one by one from a plain download', async () => {
    serveBill(hash);
    const c = client();
    const applied = await c.applyTradeBill({ bill_date: '2025-03-14' });
    let n = 0;
    const s = c.downloadTradeBill(applied);
    for await (const r of s) expect(r.out_trade_no).toBe(`S2025${1000 + n++}`);
    expect(n).toBe(20);
    expect((await s.summary()).total_count).toBe(20);
  });

  it('a gzip bill whose hash does not match is rejected', async () => {
    serveBill('0'.repeat(40));
    await expect(client().fetchTradeBill({ bill_date: '2025-03-14', tar_type: 'GZIP' })).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
  });

  it('a download that stalls part-way fails with TIMEOUT instead of hanging the bill run', async () => {
    const { createServer: createHttpServer } = await import('node:http');
    const stalled = createHttpServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      res.write(file.subarray(0, 300)); // then nothing more, connection kept open
    });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(stalled.address() as { port: number }).port}`;
      const c = client({ baseUrl: url, timeoutMs: 300, maxRetries: 0 });
      const s = c.downloadTradeBill({ hash_type: 'SHA1', hash_value: hash, download_url: `${url}/v3/billdownload/file?token=T` });
      const started = Date.now();
      const outcome = await Promise.race([
        s.summary().then(() => 'finished', (e) => e),
        new Promise((r) => setTimeout(() => r('still waiting'), 3000)),
      ]);
      expect(outcome).toBeInstanceOf(TransportError);
      expect(outcome).toMatchObject({ code: 'TIMEOUT' });
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      stalled.closeAllConnections();
      await new Promise((r) => stalled.close(r));
    }
  });

  it('a bill abandoned part-way (malformed row) closes its download connection', async () => {
    const { createServer: createHttpServer } = await import('node:http');
    let closed = false;
    const bad = Buffer.from(file.toString('utf8').replace('`1.00,', '`x.00,'), 'utf8');
    const server = createHttpServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      res.write(bad); // the bad row is in here; the rest never comes, the connection stays open
      req.socket.on('close', () => (closed = true));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const c = client({ baseUrl: url, timeoutMs: 10_000, maxRetries: 0 });
      const s = c.downloadTradeBill({ hash_type: 'SHA1', hash_value: hash, download_url: `${url}/v3/billdownload/file?token=T` });
      await expect(s.summary()).rejects.toMatchObject({ code: 'BILL_MALFORMED' });
      for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 20));
      expect(closed).toBe(true);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('bill errors and bad dates', async () => {
    fake.on('GET', '/v3/bill/tradebill', () => ({ status: 400, body: { code: 'NO_STATEMENT_EXIST', message: '请求的账单文件不存在' }, signer: null }));
    await expect(client().applyTradeBill({ bill_date: '2025-03-14' })).rejects.toMatchObject({ code: 'NO_STATEMENT_EXIST', retryable: false });
    fake.requests.length = 0;
    fake.on('GET', '/v3/bill/tradebill', () => ({ status: 400, body: { code: 'STATEMENT_CREATING', message: '账单生成中' }, signer: null }));
    await expect(client().applyTradeBill({ bill_date: '2025-03-14' })).rejects.toMatchObject({ code: 'STATEMENT_CREATING', retryable: false, kind: 'STATEMENT_NOT_READY' });
    expect(fake.requests).toHaveLength(1); // ~30 min, not an immediate retry
    await expect(client().applyTradeBill({ bill_date: '2025/03/14' })).rejects.toMatchObject({ field: '/bill_date' });
  });
});

describe('notifications through the client', () => {
  it('verifies, decrypts and types a combine payment notice', async () => {
    const resource = encryptResource(JSON.stringify(queryResult), apiKey(), 'transaction');
    const body = Buffer.from(JSON.stringify({ id: 'EV-2018022511223320873', create_time: '2025-03-14T12:03:41+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功', resource: { original_type: 'transaction', ...resource } }));
    const headers = signBody(wx.privateKey, PUB_ID, body);
    const { envelope, resource: order } = await client().parseNotification(headers, body);
    expect(envelope.id).toBe('EV-2018022511223320873');
    expect(order.sub_orders[1]!.amount.total_amount).toBe(1250);
  });
});
