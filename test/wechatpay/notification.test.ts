import { describe, expect, it } from 'vitest';
import { encryptResource } from '../../shared/wechatpay/aead';
import { parseNotification } from '../../shared/wechatpay/notification';
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
