import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiV3Key, encryptResource } from '../../shared/wechatpay/aead';
import { NotificationDispatcher, parseNotification, parseNotifyRequest, type WechatPayNotification } from '../../shared/wechatpay/notification';
import { readRawBody } from '../../shared/util/raw-body';
import { PROBE_PREFIX, signBody } from '../../shared/wechatpay/sign';
import { PublicKeySource, Verifier } from '../../shared/wechatpay/verify';
import { DecryptionError, NotificationError, VerificationError } from '../../shared/wechatpay/errors';
import { apiKey, rsaPair } from './helpers/keys';

const wx = rsaPair();
const ID = 'PUB_KEY_ID_0119000001092025';
const verifier = new Verifier({ keys: new PublicKeySource([[ID, wx.publicKey]]) });
const key = apiKey();

const order = {
  combine_appid: 'wxd678efh567hg6787', combine_mchid: '1900000109', combine_out_trade_no: 'C20250314120301',
  combine_payer_info: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
  sub_orders: [
    { mchid: '1900000109', trade_type: 'NATIVE', trade_state: 'SUCCESS', bank_type: 'OTHERS', attach: 'C20250314120301', success_time: '2025-03-14T12:03:41+08:00', transaction_id: '4200002601202503141234567890', out_trade_no: 'S20250314120301A', amount: { total_amount: 3800, currency: 'CNY', payer_amount: 3800, payer_currency: 'CNY' } },
    { mchid: '1900000110', trade_type: 'NATIVE', trade_state: 'SUCCESS', bank_type: 'OTHERS', attach: 'C20250314120301', success_time: '2025-03-14T12:03:41+08:00', transaction_id: '4200002601202503149876543210', out_trade_no: 'S20250314120301B', amount: { total_amount: 1250, currency: 'CNY', payer_amount: 1250, payer_currency: 'CNY' } },
  ],
};

function envelope(over: Record<string, unknown> = {}, plaintext: string = JSON.stringify(order), aad = 'transaction') {
  return {
    id: 'EV-2018022511223320873', create_time: '2025-03-14T12:03:41+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
    resource: { original_type: 'transaction', ...encryptResource(plaintext, key, aad) },
    ...over,
  };
}

function signed(body: object | string) {
  const raw = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return { raw, headers: signBody(wx.privateKey, ID, raw) };
}

async function failure(headers: Record<string, string>, raw: Buffer) {
  return parseNotification(verifier, key, headers, raw).then(() => null, (e) => e);
}

describe('notification: raw body + headers → verified, decrypted, typed', () => {
  it('a genuine notice yields the envelope and the combine order', async () => {
    const { raw, headers } = signed(envelope());
    const n = await parseNotification(verifier, key, headers, raw);
    expect(n.envelope.event_type).toBe('TRANSACTION.SUCCESS');
    expect(n.resource.sub_orders.map((s) => s.amount.total_amount)).toEqual([3800, 1250]);
    expect(n.resource.sub_orders[0]!.transaction_id).toBe('4200002601202503141234567890');
  });

  it('each way of failing has its own code', async () => {
    const codes = new Map<string, string>();
    const record = async (label: string, headers: Record<string, string>, raw: Buffer, cls: Function) => {
      const err = await failure(headers, raw);
      expect(err, label).toBeInstanceOf(cls);
      codes.set(label, err.code);
    };
    const g = signed(envelope());
    await record('missing header', { ...g.headers, 'Wechatpay-Signature': '' }, g.raw, VerificationError);
    await record('probe', { ...g.headers, 'Wechatpay-Signature': PROBE_PREFIX + 'x' }, g.raw, VerificationError);
    await record('stale', signBody(wx.privateKey, ID, g.raw, Date.now() - 3600_000) as unknown as Record<string, string>, g.raw, VerificationError);
    await record('tampered body', g.headers as unknown as Record<string, string>, Buffer.from(g.raw.toString().replace('EV-2018', 'EV-2019')), VerificationError);
    await record('unknown serial', signBody(wx.privateKey, 'PUB_KEY_ID_1', g.raw) as unknown as Record<string, string>, g.raw, VerificationError);
    const h = (x: ReturnType<typeof signed>) => x.headers as unknown as Record<string, string>;
    let s = signed('not json');
    await record('not json', h(s), s.raw, NotificationError);
    s = signed(envelope({ event_type: 'REFUND.SUCCESS' }));
    await record('event type', h(s), s.raw, NotificationError);
    s = signed(envelope({ resource_type: 'plain' }));
    await record('resource type', h(s), s.raw, NotificationError);
    const e = envelope();
    s = signed({ ...e, resource: { ...e.resource, algorithm: 'AEAD_SM4_GCM' } });
    await record('algorithm', h(s), s.raw, DecryptionError);
    const wrongAad = envelope({}, JSON.stringify(order), 'certificate');
    s = signed({ ...wrongAad, resource: { ...wrongAad.resource, associated_data: 'transaction' } });
    await record('bad tag / aad', h(s), s.raw, DecryptionError);
    s = signed(envelope({}, JSON.stringify({ combine_out_trade_no: 'C1' })));
    await record('not an order', h(s), s.raw, NotificationError);
    expect(Object.fromEntries(codes)).toEqual({
      'missing header': 'HEADER_MISSING',
      probe: 'SIGNATURE_PROBE',
      stale: 'TIMESTAMP_EXPIRED',
      'tampered body': 'SIGNATURE_INVALID',
      'unknown serial': 'SERIAL_UNKNOWN',
      'not json': 'NOTIFICATION_MALFORMED',
      'event type': 'EVENT_TYPE_UNSUPPORTED',
      'resource type': 'RESOURCE_TYPE_UNSUPPORTED',
      algorithm: 'ALGORITHM_UNSUPPORTED',
      'bad tag / aad': 'DECRYPT_FAILED',
      'not an order': 'RESOURCE_INVALID',
    });
  });

  it('verification uses the raw bytes: re-serialized JSON with the same meaning fails', async () => {
    const pretty = JSON.stringify(envelope(), null, 2);
    const headers = signBody(wx.privateKey, ID, pretty);
    await expect(parseNotification(verifier, key, headers, Buffer.from(pretty))).resolves.toBeTruthy();
    await expect(parseNotification(verifier, key, headers, Buffer.from(JSON.stringify(JSON.parse(pretty))))).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });
});

// ─── One parse-and-dispatch for every kind: combine, basic, refund ───────────────────────────

const keys = { verifier, apiV3Key: key };

const basic = {
  appid: 'wxd678efh567hg6787', mchid: '1900000110', out_trade_no: 'S20250314120301C', transaction_id: '4200002601202503141111111111',
  trade_type: 'NATIVE', trade_state: 'SUCCESS', trade_state_desc: '支付成功', bank_type: 'OTHERS', attach: 'C20250314120301',
  success_time: '2025-03-14T12:03:41+08:00', payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
  amount: { total: 2800, payer_total: 2800, currency: 'CNY', payer_currency: 'CNY' },
};

const refund = (status = 'SUCCESS') => ({
  mchid: '1900000110', out_trade_no: 'S20250314120301B', transaction_id: '4200002601202503149876543210',
  out_refund_no: 'R20250315093000B1', refund_id: '50000000382019052709732678859', refund_status: status,
  ...(status === 'SUCCESS' ? { success_time: '2025-03-15T09:30:05+08:00' } : {}),
  user_received_account: '支付用户零钱', amount: { total: 1250, refund: 500, payer_total: 1250, payer_refund: 500 },
});

/** A notification as WeChat Pay sends one: resource encrypted with `aeadKey`, body signed with `signer`. */
function notice(event: string, resource: object, opts: { originalType?: string | null; aad?: string; aeadKey?: typeof key; signer?: typeof wx.privateKey } = {}) {
  const originalType = opts.originalType === undefined ? (event.startsWith('REFUND.') ? 'refund' : 'transaction') : opts.originalType;
  const enc = encryptResource(JSON.stringify(resource), opts.aeadKey ?? key, opts.aad ?? (originalType ?? ''));
  const body = {
    id: `EV-${event}-${Math.random().toString(36).slice(2)}`, create_time: '2025-03-15T09:30:05+08:00', resource_type: 'encrypt-resource', event_type: event,
    summary: event.startsWith('REFUND.') ? '退款成功' : '支付成功',
    resource: originalType === null ? enc : { original_type: originalType, ...enc },
  };
  const raw = Buffer.from(JSON.stringify(body));
  return { raw, headers: signBody(opts.signer ?? wx.privateKey, ID, raw) as unknown as Record<string, string> };
}

const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code ?? String(e));

describe('parseNotifyRequest: verify → parse → decrypt → typed by event type', () => {
  it('TRANSACTION.SUCCESS with a combine resource → combine-transaction', async () => {
    const { raw, headers } = notice('TRANSACTION.SUCCESS', order);
    const n = await parseNotifyRequest(keys, headers, raw);
    expect(n.kind).toBe('combine-transaction');
    if (n.kind !== 'combine-transaction') return;
    expect(n.resource.combine_out_trade_no).toBe('C20250314120301');
    expect(n.resource.sub_orders).toHaveLength(2);
  });

  it('TRANSACTION.SUCCESS with a basic resource → transaction', async () => {
    const { raw, headers } = notice('TRANSACTION.SUCCESS', basic);
    const n = await parseNotifyRequest(keys, headers, raw);
    expect(n.kind).toBe('transaction');
    if (n.kind !== 'transaction') return;
    expect(n.resource).toMatchObject({ out_trade_no: 'S20250314120301C', mchid: '1900000110', trade_state: 'SUCCESS', amount: { total: 2800 } });
  });

  it('REFUND.SUCCESS / ABNORMAL / CLOSED → refund, with the event type; associated_data may be empty', async () => {
    for (const status of ['SUCCESS', 'ABNORMAL', 'CLOSED']) {
      const { raw, headers } = notice(`REFUND.${status}`, refund(status), { aad: status === 'CLOSED' ? '' : 'refund' });
      const n = await parseNotifyRequest(keys, headers, raw);
      expect(n.kind).toBe('refund');
      if (n.kind !== 'refund') return;
      expect(n.eventType).toBe(`REFUND.${status}`);
      expect(n.resource).toMatchObject({ out_refund_no: 'R20250315093000B1', refund_status: status, amount: { refund: 500, total: 1250 } });
    }
  });

  it('a tampered or forged refund notification is refused, each way with its own code', async () => {
    const attacker = rsaPair();
    const g = notice('REFUND.SUCCESS', refund());
    const results = {
      // event changed after WeChat Pay signed (the raw envelope bytes are what is signed)
      tampered: await codeOf(parseNotifyRequest(keys, g.headers, Buffer.from(g.raw.toString().replace('"REFUND.SUCCESS"', '"REFUND.CLOSED"')))),
      // signed by someone else under WeChat Pay's key id
      forgedSignature: await codeOf((() => { const x = notice('REFUND.SUCCESS', refund(), { signer: attacker.privateKey }); return parseNotifyRequest(keys, x.headers, x.raw); })()),
      // validly signed envelope around a resource encrypted with another APIv3 key
      wrongApiV3Key: await codeOf((() => { const x = notice('REFUND.SUCCESS', refund(), { aeadKey: apiV3Key('AnotherApiV3Key0123456789abcdefg') }); return parseNotifyRequest(keys, x.headers, x.raw); })()),
      statusContradictsEvent: await codeOf((() => { const x = notice('REFUND.SUCCESS', refund('ABNORMAL')); return parseNotifyRequest(keys, x.headers, x.raw); })()),
      originalTypeContradictsEvent: await codeOf((() => { const x = notice('REFUND.SUCCESS', refund(), { originalType: 'transaction' }); return parseNotifyRequest(keys, x.headers, x.raw); })()),
      notARefund: await codeOf((() => { const x = notice('REFUND.SUCCESS', { ...refund(), out_refund_no: undefined }); return parseNotifyRequest(keys, x.headers, x.raw); })()),
      refundAmountNotInteger: await codeOf((() => { const x = notice('REFUND.SUCCESS', { ...refund(), amount: { total: 1250, refund: 5.5 } }); return parseNotifyRequest(keys, x.headers, x.raw); })()),
      unknownRefundEvent: await codeOf((() => { const x = notice('REFUND.PROCESSING', refund('PROCESSING')); return parseNotifyRequest(keys, x.headers, x.raw); })()),
    };
    expect(results).toEqual({
      tampered: 'SIGNATURE_INVALID',
      forgedSignature: 'SIGNATURE_INVALID',
      wrongApiV3Key: 'DECRYPT_FAILED',
      statusContradictsEvent: 'RESOURCE_INVALID',
      originalTypeContradictsEvent: 'RESOURCE_TYPE_UNSUPPORTED',
      notARefund: 'RESOURCE_INVALID',
      refundAmountNotInteger: 'RESOURCE_INVALID',
      unknownRefundEvent: 'EVENT_TYPE_UNSUPPORTED',
    });
  });

  it('a basic payment resource must carry what a payment cannot be without', async () => {
    for (const missing of ['transaction_id', 'amount', 'appid', 'mchid']) {
      const x = notice('TRANSACTION.SUCCESS', { ...basic, [missing]: undefined });
      await expect(parseNotifyRequest(keys, x.headers, x.raw), missing).rejects.toMatchObject({ code: 'RESOURCE_INVALID', message: expect.stringContaining(missing) });
    }
    const x = notice('TRANSACTION.SUCCESS', { ...basic, amount: { total: '2800' } });
    await expect(parseNotifyRequest(keys, x.headers, x.raw)).rejects.toMatchObject({ code: 'RESOURCE_INVALID' });
  });

  it('kinds limits what is accepted; the legacy parseNotification stays combine-only', async () => {
    const r = notice('REFUND.SUCCESS', refund());
    const b = notice('TRANSACTION.SUCCESS', basic);
    const c = notice('TRANSACTION.SUCCESS', order);
    expect(await codeOf(parseNotifyRequest(keys, r.headers, r.raw, { kinds: ['transaction', 'combine-transaction'] }))).toBe('EVENT_TYPE_UNSUPPORTED');
    expect(await codeOf(parseNotifyRequest(keys, b.headers, b.raw, { kinds: ['combine-transaction', 'refund'] }))).toBe('RESOURCE_INVALID');
    expect(await codeOf(parseNotifyRequest(keys, c.headers, c.raw, { kinds: ['transaction'] }))).toBe('RESOURCE_INVALID');
    expect(await codeOf(parseNotification(verifier, key, r.headers, r.raw))).toBe('EVENT_TYPE_UNSUPPORTED');
    expect(await codeOf(parseNotification(verifier, key, b.headers, b.raw))).toBe('RESOURCE_INVALID');
    const legacy = await parseNotification(verifier, key, c.headers, c.raw);
    expect(legacy.resource.combine_out_trade_no).toBe('C20250314120301');
    expect(Object.keys(legacy).sort()).toEqual(['envelope', 'resource']);
  });
});

describe('NotificationDispatcher behind a real HTTP endpoint', () => {
  let server: Server;
  let url: string;
  const seen: WechatPayNotification[] = [];
  let failNext = false;

  beforeAll(async () => {
    const dispatcher = new NotificationDispatcher(keys)
      .on('combine-transaction', (n) => { seen.push(n); })
      .on('transaction', (n) => { seen.push(n); })
      .on('refund', async (n) => {
        if (failNext) {
          failNext = false;
          throw new Error('database is locked');
        }
        seen.push(n);
      });
    server = createServer(async (req, res) => {
      try {
        const raw = await readRawBody(req, 65536);
        await dispatcher.receive(req.headers, raw);
        res.writeHead(204).end();
      } catch (err) {
        const code = (err as { code?: string }).code;
        const status = code ? 400 : 500;
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ code: 'FAIL', message: code ?? 'internal error' }));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/wechatpay/notify`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const post = (x: { raw: Buffer; headers: Record<string, string> }) =>
    fetch(url, { method: 'POST', headers: { ...x.headers, 'Content-Type': 'application/json' }, body: new Uint8Array(x.raw) }).then(async (r) => ({ status: r.status, body: r.status === 204 ? null : await r.json() }));

  it('each kind reaches its own handler, typed; failures are answered 4xx/5xx so WeChat Pay delivers again', async () => {
    expect((await post(notice('TRANSACTION.SUCCESS', order))).status).toBe(204);
    expect((await post(notice('TRANSACTION.SUCCESS', basic))).status).toBe(204);
    expect((await post(notice('REFUND.ABNORMAL', refund('ABNORMAL')))).status).toBe(204);
    expect(seen.map((n) => [n.kind, n.eventType])).toEqual([
      ['combine-transaction', 'TRANSACTION.SUCCESS'],
      ['transaction', 'TRANSACTION.SUCCESS'],
      ['refund', 'REFUND.ABNORMAL'],
    ]);
    const forged = notice('REFUND.SUCCESS', refund(), { signer: rsaPair().privateKey });
    expect(await post(forged)).toEqual({ status: 400, body: { code: 'FAIL', message: 'SIGNATURE_INVALID' } });
    failNext = true;
    expect((await post(notice('REFUND.SUCCESS', refund()))).status).toBe(500);
    expect(seen).toHaveLength(3);
  });

  it('a kind without a handler is refused, not acknowledged', async () => {
    const only = new NotificationDispatcher(keys).on('combine-transaction', () => undefined);
    const r = notice('REFUND.SUCCESS', refund());
    expect(await codeOf(only.receive(r.headers, r.raw))).toBe('EVENT_TYPE_UNSUPPORTED');
    // A parser that ignores `kinds` (a merchant registry) still cannot deliver an unhandled kind.
    const loose = new NotificationDispatcher((h, b) => parseNotifyRequest(keys, h, b)).on('transaction', () => undefined);
    expect(await codeOf(loose.receive(r.headers, r.raw))).toBe('EVENT_TYPE_UNSUPPORTED');
  });
});
