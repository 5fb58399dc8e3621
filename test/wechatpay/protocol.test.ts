import { describe, expect, it } from 'vitest';
import { createPublicKey, createSecretKey } from 'node:crypto';
import {
  AUTH_SCHEME, PROBE_PREFIX, RequestSigner, createNonce, parseAuthorization, requestMessage, responseMessage, signBody, signMessage, verifyMessage,
} from '../../shared/wechatpay/sign';
import { Verifier, PublicKeySource, CombinedKeySource } from '../../shared/wechatpay/verify';
import { decryptResource, encryptResource, apiV3Key } from '../../shared/wechatpay/aead';
import { VerificationError, DecryptionError, ConfigError } from '../../shared/wechatpay/errors';
import { rsaPair } from './helpers/keys';

// Reference §9 test vectors.
const VECTOR_MESSAGE = 'POST\n/v3/combine-transactions/native\n1735689600\nk2pV7gQH9xW3bN6mT0rZ8cY4dJ1sF5aL\n{"combine_out_trade_no":"POS20250101000001","sub_orders":[]}\n';
const VECTOR_SIGNATURE = 'tigytAsVmkEERyLbpvLqZwUxBkDKz4xe8hwSQ9YgzJr0T0NmyC1OG7BaqW1n9J980SAo9kMp4aanglgnBhWIkvuqggGPTv9LvDYg5Ym2FxNc88yoi8MvhcA8yedKobvLfOHXNXg/1tCEEFsga8fbv/aYqa0VbpklI2/dwmEpCG7eDdRDzh+Iuzf9Z2aofKv6lsse2xDlaNnV5ysuMonuaW6XOzMXmru3d7c/GaWuduqgURorN35YjtmhFSH7L9ndSBGBLHQLzaHNfWmhnpzTpc4S8mRG1ZJu0qtNrif6JenSzC3H/nKKm7R8ezGJB18IbMUHmS94GiTdQEbj9/t+Lw==';
const VECTOR_PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4NBZWI3Axctr28rQJY91
GdFtS5v68R1dPo2tRcOlkB2r2/88W6cAreo77dbvy+fpS7KaPsxrIpsa6TeFeiJx
iITth2mkmLPjbII6oILefsBm1wicENameaR5z7cqkVPPfE0L/9AJglQI/RQUztgF
rl0HpbmQWowG2Fvc16A9rf1uiNH50o8/Y23dRqFBTeA5NInplbGwPSSjyCp8t44s
l/PrmqhD1PZPhW98TfIfhr6ldL4k9QgKddI3dH4MyDlDtK+GsmnpnWH/NGmylGMg
NPLjlGgb9ghTj9mF7TP2rT/rogvn72FIWi6MTRdzEruYke4p0LBz5TrIryzSkop+
NQIDAQAB
-----END PUBLIC KEY-----
`;

describe('reference test vectors (§9)', () => {
  const pub = createPublicKey(VECTOR_PUBLIC_KEY);

  it('builds the request message byte for byte and the signature verifies', () => {
    const msg = requestMessage('post', '/v3/combine-transactions/native', 1735689600, 'k2pV7gQH9xW3bN6mT0rZ8cY4dJ1sF5aL', '{"combine_out_trade_no":"POS20250101000001","sub_orders":[]}');
    expect(msg.toString('utf8')).toBe(VECTOR_MESSAGE);
    expect(verifyMessage(pub, msg, VECTOR_SIGNATURE)).toBe(true);
    expect(verifyMessage(pub, VECTOR_MESSAGE.replace('POS2025', 'POS2026'), VECTOR_SIGNATURE)).toBe(false);
  });

  it('decrypts the AEAD vector and fails when the associated data changes', () => {
    const key = apiV3Key('TestApiV3Key0123456789abcdefghij');
    const resource = { algorithm: 'AEAD_AES_256_GCM', nonce: 'a1b2c3d4e5f6', associated_data: 'transaction', ciphertext: 'LTnXRhfz7AOtySTSJfGb5w1pUhjL7/cISTIyFJlWKI+RfCNfEyVahnGS4wnP0ef0WTI8io5ORHOANAlM' };
    expect(decryptResource(resource, key).toString('utf8')).toBe('{"combine_out_trade_no":"POS20250101000001"}');
    expect(() => decryptResource({ ...resource, associated_data: 'certificate' }, key)).toThrowError(DecryptionError);
  });

  it('a WECHATPAY/SIGNTEST signature is refused', async () => {
    expect(verifyMessage(pub, VECTOR_MESSAGE, PROBE_PREFIX + 'abc')).toBe(false);
    const v = new Verifier({ keys: new PublicKeySource([['PUB_KEY_ID_1', pub]]) });
    const headers = { 'wechatpay-timestamp': String(Math.floor(Date.now() / 1000)), 'wechatpay-nonce': 'n', 'wechatpay-serial': 'PUB_KEY_ID_1', 'wechatpay-signature': PROBE_PREFIX + 'xyz' };
    await expect(v.verify(headers, '{}')).rejects.toMatchObject({ code: 'SIGNATURE_PROBE' });
  });
});

describe('signing and verification round trips', () => {
  const wx = rsaPair();
  const merchant = rsaPair();
  const keys = new PublicKeySource([['PUB_KEY_ID_0114', wx.publicKey]]);
  const verifier = new Verifier({ keys });
  const body = Buffer.from('{"code_url":"weixin://wxpay/bizpayurl?pr=abc","名":"合单"}');

  it('nonce: 32 chars of [0-9A-Za-z], all different', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const n = createNonce();
      expect(n).toMatch(/^[0-9A-Za-z]{32}$/);
      seen.add(n);
    }
    expect(seen.size).toBe(200);
  });

  it('a GET message ends in an empty body line', () => {
    expect(requestMessage('GET', '/v3/certificates', 1, 'n').toString()).toBe('GET\n/v3/certificates\n1\nn\n\n');
    expect(responseMessage(1, 'n').toString()).toBe('1\nn\n\n');
  });

  it('Authorization header carries the five fields and signs exactly method, URL, time, nonce, body', () => {
    const signer = new RequestSigner({ mchid: '1900000109', serialNo: 'ABC123', privateKey: merchant.privateKey });
    const header = signer.authorization('POST', '/v3/x?a=1', '{"k":1}', 1_700_000_000_000);
    expect(header.startsWith(AUTH_SCHEME + ' ')).toBe(true);
    const f = parseAuthorization(header)!;
    expect(f).toMatchObject({ mchid: '1900000109', serial_no: 'ABC123', timestamp: '1700000000' });
    expect(f.nonce_str).toMatch(/^[0-9A-Za-z]{32}$/);
    expect(verifyMessage(merchant.publicKey, requestMessage('POST', '/v3/x?a=1', f.timestamp, f.nonce_str, '{"k":1}'), f.signature)).toBe(true);
    expect(verifyMessage(merchant.publicKey, requestMessage('POST', '/v3/x?a=2', f.timestamp, f.nonce_str, '{"k":1}'), f.signature)).toBe(false);
    expect(verifyMessage(merchant.publicKey, requestMessage('POST', '/v3/x?a=1', f.timestamp, f.nonce_str, '{"k": 1}'), f.signature)).toBe(false);
    expect(parseAuthorization('WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2"')).toBeNull();
    expect(parseAuthorization('Bearer x')).toBeNull();
  });

  it('a correctly signed response verifies', async () => {
    const h = signBody(wx.privateKey, 'PUB_KEY_ID_0114', body);
    await expect(verifier.verify(h, body)).resolves.toMatchObject({ serial: 'PUB_KEY_ID_0114' });
    // Lower-case header names as node:http delivers them.
    const lower = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
    await expect(verifier.verify(lower, body)).resolves.toBeTruthy();
  });

  it('a tampered body, nonce, timestamp or signature fails', async () => {
    const h = signBody(wx.privateKey, 'PUB_KEY_ID_0114', body);
    const tampered = Buffer.from(body);
    tampered[5] ^= 1;
    await expect(verifier.verify(h, tampered)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await expect(verifier.verify({ ...h, 'Wechatpay-Nonce': h['Wechatpay-Nonce'] + 'x' }, body)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await expect(verifier.verify({ ...h, 'Wechatpay-Timestamp': String(Number(h['Wechatpay-Timestamp']) - 1) }, body)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    const sig = Buffer.from(h['Wechatpay-Signature'], 'base64');
    sig[0] ^= 1;
    await expect(verifier.verify({ ...h, 'Wechatpay-Signature': sig.toString('base64') }, body)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await expect(verifier.verify({ ...h, 'Wechatpay-Signature': '%%%not base64' }, body)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it('a body signed by another key, or an unknown serial, fails', async () => {
    const other = rsaPair();
    await expect(verifier.verify(signBody(other.privateKey, 'PUB_KEY_ID_0114', body), body)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await expect(verifier.verify(signBody(wx.privateKey, 'PUB_KEY_ID_9999', body), body)).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
  });

  it('stale and future timestamps fail (±300 s, 300 itself refused)', async () => {
    const now = Date.now();
    for (const offset of [-300, 300, -3600, 86_400]) {
      const h = signBody(wx.privateKey, 'PUB_KEY_ID_0114', body, now + offset * 1000);
      await expect(new Verifier({ keys, now: () => now }).verify(h, body)).rejects.toMatchObject({ code: 'TIMESTAMP_EXPIRED' });
    }
    for (const offset of [-299, 299]) {
      const h = signBody(wx.privateKey, 'PUB_KEY_ID_0114', body, now + offset * 1000);
      await expect(new Verifier({ keys, now: () => now }).verify(h, body)).resolves.toBeTruthy();
    }
    const h = signBody(wx.privateKey, 'PUB_KEY_ID_0114', body);
    await expect(verifier.verify({ ...h, 'Wechatpay-Timestamp': '1.7e9' }, body)).rejects.toMatchObject({ code: 'TIMESTAMP_INVALID' });
  });

  it('missing headers and foreign signature types are refused before any RSA work', async () => {
    const h = signBody(wx.privateKey, 'PUB_KEY_ID_0114', body);
    for (const name of ['Wechatpay-Timestamp', 'Wechatpay-Nonce', 'Wechatpay-Signature', 'Wechatpay-Serial'] as const) {
      const copy: Record<string, string> = { ...h };
      delete copy[name];
      const err = await verifier.verify(copy, body).catch((e) => e);
      expect(err).toBeInstanceOf(VerificationError);
      expect(err.code).toBe('HEADER_MISSING');
      expect(err.message).toContain(name);
    }
    await expect(verifier.verify({ ...h, 'Wechatpay-Signature-Type': 'WECHATPAY2-SM2-WITH-SM3' }, body)).rejects.toMatchObject({ code: 'SIGNATURE_TYPE_UNSUPPORTED' });
  });

  it('combined key sources dispatch on Wechatpay-Serial (migration)', async () => {
    const cert = rsaPair();
    const v = new Verifier({ keys: new CombinedKeySource([keys, new PublicKeySource([['5157F09EFDC096DE15EBE81A47057A7232F1B8E1', cert.publicKey]])]) });
    await expect(v.verify(signBody(wx.privateKey, 'PUB_KEY_ID_0114', body), body)).resolves.toBeTruthy();
    await expect(v.verify(signBody(cert.privateKey, '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', body), body)).resolves.toBeTruthy();
    // The right key for the wrong serial still fails.
    await expect(v.verify(signBody(cert.privateKey, 'PUB_KEY_ID_0114', body), body)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it('signMessage output verifies with node:crypto directly', () => {
    const s = signMessage(merchant.privateKey, 'abc\n');
    expect(verifyMessage(merchant.publicKey, Buffer.from('abc\n'), s)).toBe(true);
  });
});

describe('AEAD_AES_256_GCM', () => {
  const key = apiV3Key('0123456789abcdef0123456789abcdef');
  const plain = '{"combine_out_trade_no":"C2025","sub_orders":[{"mchid":"1"}]}';

  it('round-trips and rejects tampered ciphertext, tag, nonce or associated data', () => {
    const r = encryptResource(plain, key, 'transaction');
    expect(r.nonce).toHaveLength(12);
    expect(decryptResource(r, key).toString()).toBe(plain);
    const data = Buffer.from(r.ciphertext, 'base64');
    const flip = (i: number) => {
      const d = Buffer.from(data);
      d[i] ^= 0x01;
      return d.toString('base64');
    };
    for (const bad of [
      { ...r, ciphertext: flip(0) },
      { ...r, ciphertext: flip(data.length - 1) }, // the tag
      { ...r, nonce: r.nonce.slice(0, 11) + (r.nonce[11] === 'a' ? 'b' : 'a') },
      { ...r, associated_data: 'certificate' },
      { ...r, associated_data: undefined },
    ]) {
      expect(() => decryptResource(bad, key)).toThrowError(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    }
    expect(() => decryptResource(r, apiV3Key('0123456789abcdef0123456789abcdeX'))).toThrowError(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
  });

  it('empty associated data works both ways; other algorithms and short data are refused', () => {
    const r = encryptResource(plain, key, '');
    expect(decryptResource({ ...r, associated_data: undefined }, key).toString()).toBe(plain);
    expect(() => decryptResource({ ...r, algorithm: 'AEAD_SM4_GCM' }, key)).toThrowError(expect.objectContaining({ code: 'ALGORITHM_UNSUPPORTED' }));
    expect(() => decryptResource({ ...r, ciphertext: Buffer.alloc(10).toString('base64') }, key)).toThrowError(expect.objectContaining({ code: 'RESOURCE_MALFORMED' }));
  });

  it('the APIv3 key must be 32 bytes', () => {
    expect(() => apiV3Key('short')).toThrowError(ConfigError);
    expect(createSecretKey(Buffer.alloc(32)).symmetricKeySize).toBe(32);
  });
});
