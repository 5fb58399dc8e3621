import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRefund, queryRefund } from '../../shared/wechatpay/refund';
import { ApiError, ResponseError, ValidationError, VerificationError } from '../../shared/wechatpay/errors';
import type { Transport } from '../../shared/wechatpay/transport';
import type { RefundRequest } from '../../shared/wechatpay/models';
import type { FakeWechatPay } from './helpers/fake-wechatpay';
import { startFakeTransport } from './helpers/fake-transport';
import { rsaPair } from './helpers/keys';

// The sub-order's own merchant: its key signs the refund, its WeChat Pay public key verifies the answer.
const merchant = rsaPair();
const wx = rsaPair();
const PUB_ID = 'PUB_KEY_ID_0119000001102025';
const MCHID = '1900000110';
let fake: FakeWechatPay;
let api: Transport;

const request = (): RefundRequest => ({
  out_trade_no: 'S20250314120301B',
  out_refund_no: 'R20250315093000B1',
  reason: '顾客退货：面条',
  notify_url: 'https://pos.example.com/wechatpay/notify',
  amount: { refund: 500, total: 1250, currency: 'CNY' },
});

const answer = (over: Record<string, unknown> = {}) => ({
  refund_id: '50000000382019052709732678859',
  out_refund_no: 'R20250315093000B1',
  transaction_id: '4200002601202503149876543210',
  out_trade_no: 'S20250314120301B',
  channel: 'ORIGINAL',
  user_received_account: '支付用户零钱',
  create_time: '2025-03-15T09:30:01+08:00',
  status: 'PROCESSING',
  funds_account: 'AVAILABLE',
  amount: { total: 1250, refund: 500, payer_total: 1250, payer_refund: 500, settlement_refund: 500, settlement_total: 1250, discount_refund: 0, currency: 'CNY' },
  future_field: 'kept',
  ...over,
});

beforeAll(async () => {
  ({ fake, api } = await startFakeTransport({ mchid: MCHID, merchant, wx, pubId: PUB_ID }));
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
});

describe('refund create/query over real HTTP, signed by the sub-order merchant', () => {
  it('create: sends exactly the validated body, signed, and returns the verified typed answer', async () => {
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ body: answer() }));
    const r = await createRefund(api, request());
    expect(fake.requests).toHaveLength(1);
    const sent = fake.requests[0]!;
    expect(sent.signatureOk).toBe(true);
    expect(sent.url).toBe('/v3/refund/domestic/refunds');
    expect(sent.headers.authorization).toContain(`mchid="${MCHID}"`);
    expect(JSON.parse(sent.body.toString('utf8'))).toEqual(request());
    expect(r.status).toBe('PROCESSING');
    expect(r.amount).toMatchObject({ refund: 500, total: 1250 });
    expect(r.refund_id).toBe('50000000382019052709732678859');
    expect((r as unknown as { future_field: string }).future_field).toBe('kept');
  });

  it('create by transaction_id; optional fields that are absent are not sent', async () => {
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ body: answer({ status: 'SUCCESS', success_time: '2025-03-15T09:30:05+08:00' }) }));
    const req: RefundRequest = { transaction_id: '4200002601202503149876543210', out_refund_no: 'R20250315093000B1', amount: { refund: 1250, total: 1250, currency: 'CNY' } };
    const r = await createRefund(api, req);
    expect(JSON.parse(fake.requests[0]!.body.toString('utf8'))).toEqual(req);
    expect(r.status).toBe('SUCCESS');
  });

  it('bad input is refused before anything is sent, naming the field', async () => {
    const bad: [string, (r: RefundRequest) => void][] = [
      ['/out_refund_no', (r) => { r.out_refund_no = 'R'.repeat(65); }],
      ['/out_refund_no', (r) => { r.out_refund_no = 'R2025 0315'; }],
      ['/out_refund_no', (r) => { r.out_refund_no = 'R2025#0315'; }],
      ['/out_refund_no', (r) => { (r as { out_refund_no?: string }).out_refund_no = undefined; }],
      ['/transaction_id', (r) => { r.transaction_id = '4200002601202503149876543210'; }], // both given
      ['/out_trade_no', (r) => { r.out_trade_no = undefined; }], // neither
      ['/out_trade_no', (r) => { r.out_trade_no = 'S'.repeat(33); }],
      ['/transaction_id', (r) => { r.out_trade_no = undefined; r.transaction_id = '4200-0026'; }],
      ['/reason', (r) => { r.reason = '退'.repeat(81); }],
      ['/reason', (r) => { r.reason = '退款😀'; }],
      ['/amount/refund', (r) => { r.amount.refund = 0; }],
      ['/amount/refund', (r) => { r.amount.refund = 1.5; }],
      ['/amount/refund', (r) => { r.amount.refund = 1251; }], // above the total
      ['/amount/total', (r) => { r.amount.total = 0; }],
      ['/amount/total', (r) => { (r.amount as { total: unknown }).total = '1250'; }],
      ['/amount/currency', (r) => { (r.amount as { currency: string }).currency = 'USD'; }],
      ['/amount', (r) => { (r as { amount?: unknown }).amount = undefined; }],
      ['/notify_url', (r) => { r.notify_url = 'https://pos.example.com/notify?x=1'; }],
      ['/notify_url', (r) => { r.notify_url = 'ftp://pos.example.com/notify'; }],
      ['/notify_url', (r) => { r.notify_url = `https://pos.example.com/${'n'.repeat(240)}`; }], // 265 characters
      ['/funds_account', (r) => { (r as { funds_account?: string }).funds_account = 'UNSETTLED'; }],
    ];
    for (const [field, mutate] of bad) {
      const r = request();
      mutate(r);
      const err = await createRefund(api, r).catch((e) => e);
      expect(err, field).toBeInstanceOf(ValidationError);
      expect(err.field, err.message).toBe(field);
    }
    expect(fake.requests).toHaveLength(0);
    // The limits themselves pass: 80 characters of reason, refund = total, 64-character number with every allowed sign.
    fake.on('POST', '/v3/refund/domestic/refunds', (req) => ({ body: answer({ out_refund_no: JSON.parse(req.body.toString()).out_refund_no }) }));
    const ok = request();
    ok.reason = '退'.repeat(80);
    ok.amount.refund = ok.amount.total;
    ok.out_refund_no = `R-_|*@${'0'.repeat(58)}`;
    await createRefund(api, ok);
    expect(fake.requests).toHaveLength(1);
  });

  it('a tampered, unsigned or foreign-signed answer is refused and its content never returned', async () => {
    const other = rsaPair();
    const cases: [Parameters<FakeWechatPay['on']>[2], string][] = [
      [() => ({ body: answer({ status: 'SUCCESS' }), tamper: (b) => Buffer.from(b.toString().replace('"refund":500', '"refund":5000')) }), 'SIGNATURE_INVALID'],
      [() => ({ body: answer(), signer: null }), 'HEADER_MISSING'],
      [() => ({ body: answer(), signer: { serial: PUB_ID, key: other.privateKey } }), 'SIGNATURE_INVALID'],
      [() => ({ body: answer(), signer: { serial: 'PUB_KEY_ID_0119000001092025', key: other.privateKey } }), 'SERIAL_UNKNOWN'],
    ];
    for (const [handler, code] of cases) {
      fake.on('POST', '/v3/refund/domestic/refunds', handler);
      const err = await createRefund(api, request()).catch((e) => e);
      expect(err, code).toBeInstanceOf(VerificationError);
      expect(err.code).toBe(code);
    }
  });

  it('a verified answer that is not this refund is an error', async () => {
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ body: answer({ out_refund_no: 'R-OTHER' }) }));
    await expect(createRefund(api, request())).rejects.toBeInstanceOf(ResponseError);
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ body: answer({ status: 'DONE' }) }));
    await expect(createRefund(api, request())).rejects.toMatchObject({ code: 'RESPONSE_MALFORMED', message: expect.stringContaining('/status') });
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ body: answer({ amount: { total: 1250 } }) }));
    await expect(createRefund(api, request())).rejects.toMatchObject({ message: expect.stringContaining('/amount/refund') });
  });

  it('refusals come back as ApiError; a 500 is retried with the identical body (same out_refund_no = same refund)', async () => {
    fake.on('POST', '/v3/refund/domestic/refunds', () => ({ status: 403, body: { code: 'NOT_ENOUGH', message: '基本账户余额不足' }, signer: null }));
    const err = await createRefund(api, request()).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 403, code: 'NOT_ENOUGH', retryable: false });
    expect(fake.requests).toHaveLength(1);

    fake.requests.length = 0;
    let n = 0;
    fake.on('POST', '/v3/refund/domestic/refunds', () => (++n === 1 ? { status: 500, body: { code: 'SYSTEM_ERROR', message: '系统错误' }, signer: null } : { body: answer() }));
    await expect(createRefund(api, request())).resolves.toMatchObject({ status: 'PROCESSING' });
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[0]!.body.equals(fake.requests[1]!.body)).toBe(true);
  });

  it('query: the number is percent-encoded in the signed path; typed answer', async () => {
    const no = 'R2025|03@15';
    fake.on('GET', '/v3/refund/domestic/refunds/', (req) => ({ body: answer({ out_refund_no: decodeURIComponent(req.url.split('/').pop()!), status: 'SUCCESS', success_time: '2025-03-15T09:30:05+08:00' }) }));
    const r = await queryRefund(api, no);
    expect(fake.requests[0]!.url).toBe('/v3/refund/domestic/refunds/R2025%7C03%4015');
    expect(fake.requests[0]!.signatureOk).toBe(true);
    expect(fake.requests[0]!.body.length).toBe(0);
    expect(r).toMatchObject({ out_refund_no: no, status: 'SUCCESS', success_time: '2025-03-15T09:30:05+08:00' });
  });

  it('query: unknown refund is ApiError 404; a bad number is refused unsent', async () => {
    fake.on('GET', '/v3/refund/domestic/refunds/', () => ({ status: 404, body: { code: 'RESOURCE_NOT_EXISTS', message: '退款单不存在' }, signer: null }));
    await expect(queryRefund(api, 'R20250315000000')).rejects.toMatchObject({ status: 404, code: 'RESOURCE_NOT_EXISTS' });
    fake.requests.length = 0;
    await expect(queryRefund(api, 'R 1')).rejects.toMatchObject({ field: 'out_refund_no' });
    await expect(queryRefund(api, '../x')).rejects.toBeInstanceOf(ValidationError);
    expect(fake.requests).toHaveLength(0);
  });
});
