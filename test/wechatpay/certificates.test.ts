import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { PlatformCertificateStore } from '../../shared/wechatpay/certificates';
import { encryptResource } from '../../shared/wechatpay/aead';
import { signBody } from '../../shared/wechatpay/sign';
import { formatBeijing } from '../../shared/wechatpay/time';
import { startFakeWechatPay, type FakeWechatPay } from './helpers/fake-wechatpay';
import { apiKey, rsaPair, selfSignedCertificate, type TestCertificate } from './helpers/keys';

const merchant = rsaPair();
const pub = rsaPair();
const PUB_ID = 'PUB_KEY_ID_0119000001092025';
const oldCert = selfSignedCertificate('5157F09EFDC096DE15EBE81A47057A7232F1B8E1');
const newCert = selfSignedCertificate('7132D72A03E93CDDF8C03BBD1F37EEDF843C5A6F');
let fake: FakeWechatPay;
/** What GET /v3/certificates lists right now. */
let listed: { cert: TestCertificate; expire?: number }[] = [];
let certDownloads = 0;

const HOUR = 3600_000;
function certList() {
  return {
    data: listed.map(({ cert, expire }) => ({
      serial_no: cert.serial,
      effective_time: formatBeijing(Date.now() - HOUR),
      expire_time: formatBeijing(expire ?? Date.now() + 24 * HOUR),
      encrypt_certificate: { ...encryptResource(cert.pem, apiKey(), 'certificate'), associated_data: 'certificate' },
    })),
  };
}

const query = { combine_appid: 'wx1', combine_mchid: '1900000109', combine_out_trade_no: 'C20250314120301', sub_orders: [{ mchid: '1900000109', out_trade_no: 'S1234567', trade_state: 'NOTPAY', amount: { total_amount: 100 } }] };
const PATH = '/v3/combine-transactions/out-trade-no/C20250314120301';

function client(over: Partial<ConstructorParameters<typeof WechatPayClient>[0]> = {}) {
  return new WechatPayClient({ mchid: '1900000109', certSerial: 'ABCDEF', privateKey: merchant.privateKey, apiV3Key: apiKey(), baseUrl: fake.url, backoffBaseMs: 5, ...over });
}

beforeAll(async () => {
  fake = await startFakeWechatPay({ merchantPublicKey: merchant.publicKey, signer: { serial: oldCert.serial, key: oldCert.privateKey } });
  fake.on('GET', '/v3/certificates', () => {
    certDownloads++;
    return { body: certList() };
  });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
  certDownloads = 0;
  listed = [{ cert: oldCert }];
  fake.signer = { serial: oldCert.serial, key: oldCert.privateKey };
});

describe('platform certificate mode', () => {
  it('downloads, decrypts and uses the certificates; then sends their serial as Wechatpay-Serial', async () => {
    const c = client();
    fake.on('GET', PATH, () => ({ body: query }));
    await expect(c.combineQuery('C20250314120301')).resolves.toMatchObject({ combine_out_trade_no: 'C20250314120301' });
    expect(certDownloads).toBe(1);
    await c.combineQuery('C20250314120301');
    expect(certDownloads).toBe(1); // cached
    expect(fake.requests.at(-1)!.headers['wechatpay-serial']).toBe(oldCert.serial);
    c.close();
  });

  it('an unknown serial triggers exactly one refresh (per interval), then fails', async () => {
    const c = client();
    await c.loadCertificates();
    expect(certDownloads).toBe(1);
    const stranger = selfSignedCertificate('0A0B0C');
    fake.on('GET', PATH, () => ({ body: query, signer: { serial: stranger.serial, key: stranger.privateKey } }));
    await expect(c.combineQuery('C20250314120301')).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    // First unknown serial: downloads were 1 (start) — the throttle counts from that download.
    // With the 60 s default the unknown serial right after loading does not refresh again…
    expect(certDownloads).toBe(1);
    // …while a client whose last download is older than the interval refreshes exactly once.
    const c2 = client({ certificateMinRefreshIntervalMs: 0 });
    certDownloads = 0;
    await expect(Promise.all([c2.combineQuery('C20250314120301'), c2.combineQuery('C20250314120301')])).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    expect(certDownloads).toBe(1); // concurrent unknown serials share one download
    const c3 = client({ certificateMinRefreshIntervalMs: 60_000 });
    certDownloads = 0;
    await expect(c3.combineQuery('C20250314120301')).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    await expect(c3.combineQuery('C20250314120301')).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    expect(certDownloads).toBe(1);
    for (const x of [c, c2, c3]) x.close();
  });

  it('rotation: a new serial is picked up by one refresh, and old and new both verify', async () => {
    const c = client({ certificateMinRefreshIntervalMs: 0 });
    fake.on('GET', PATH, () => ({ body: query }));
    await c.combineQuery('C20250314120301');
    expect(certDownloads).toBe(1);
    listed = [{ cert: oldCert }, { cert: newCert }];
    fake.signer = { serial: newCert.serial, key: newCert.privateKey };
    await c.combineQuery('C20250314120301');
    expect(certDownloads).toBe(2);
    // The list now carries only the new one; the old stays usable until it expires.
    listed = [{ cert: newCert }];
    fake.signer = { serial: oldCert.serial, key: oldCert.privateKey };
    await c.combineQuery('C20250314120301');
    expect(certDownloads).toBe(2);
    // Serials compare without regard to case.
    fake.signer = { serial: newCert.serial.toLowerCase(), key: newCert.privateKey };
    await c.combineQuery('C20250314120301');
    expect(certDownloads).toBe(2);
    c.close();
  });

  it('expired certificates are dropped', async () => {
    let now = Date.now();
    const c = client({ now: () => now, certificateMinRefreshIntervalMs: 10 * HOUR });
    listed = [{ cert: oldCert, expire: now + 2 * HOUR }];
    await c.loadCertificates();
    expect(c.certificates!.get(oldCert.serial)).toBeDefined();
    now += 3 * HOUR;
    expect(c.certificates!.get(oldCert.serial)).toBeUndefined();
    expect(c.certificates!.serials()).toEqual([]);
    c.close();
  });

  it('a certificate list with a bad tag, a mismatched serial or a bad signature is not used', async () => {
    const key = apiKey();
    const entry = (cert: TestCertificate, serial = cert.serial) => ({
      serial_no: serial, effective_time: formatBeijing(Date.now() - HOUR), expire_time: formatBeijing(Date.now() + HOUR),
      encrypt_certificate: encryptResource(cert.pem, key, 'certificate'),
    });
    const store = (body: object, signer = oldCert) => new PlatformCertificateStore({
      apiV3Key: key,
      download: async () => {
        const b = Buffer.from(JSON.stringify(body));
        return { headers: signBody(signer.privateKey, signer.serial, b), body: b };
      },
    });
    const tampered = entry(oldCert);
    tampered.encrypt_certificate = { ...tampered.encrypt_certificate, associated_data: 'transaction' };
    await expect(store({ data: [tampered] }).load()).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
    await expect(store({ data: [entry(oldCert, newCert.serial)] }).load()).rejects.toMatchObject({ code: 'CERTIFICATE_INVALID' });
    await expect(store({ data: [entry(oldCert)] }, newCert).load()).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    await expect(store({ nope: 1 }).load()).rejects.toMatchObject({ code: 'CERTIFICATES_MALFORMED' });
    const good = store({ data: [entry(oldCert)] });
    await expect(good.load()).resolves.toBe(true);
    expect(good.get(oldCert.serial.toLowerCase())).toBeDefined();
  });

  it('the periodic refresh runs on its interval and stops', async () => {
    const c = client({ certificateRefreshIntervalMs: 40 });
    // Poll rather than sleep a fixed time: a loaded machine may take a while per download.
    for (let waited = 0; certDownloads < 2 && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    c.close();
    await new Promise((r) => setTimeout(r, 50)); // a download in flight at close() may still land
    const seen = certDownloads;
    expect(seen).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 100));
    expect(certDownloads).toBe(seen);
  });
});

describe('migration: public key and platform certificates at once', () => {
  it('answers signed with either key verify, dispatched on Wechatpay-Serial; requests carry the public key id', async () => {
    const c = client({ wechatpayPublicKey: { id: PUB_ID, key: pub.publicKey }, platformCertificates: true });
    fake.on('GET', PATH, () => ({ body: query }));
    await c.combineQuery('C20250314120301'); // signed by the platform certificate
    fake.signer = { serial: PUB_ID, key: pub.privateKey };
    await c.combineQuery('C20250314120301'); // signed by the public key
    expect(certDownloads).toBe(1);
    expect(fake.requests.filter((r) => r.url === PATH).every((r) => r.headers['wechatpay-serial'] === PUB_ID)).toBe(true);
    // Public-key-only mode never downloads certificates and refuses certificate serials.
    const p = client({ wechatpayPublicKey: { id: PUB_ID, key: pub.publicKey } });
    fake.signer = { serial: oldCert.serial, key: oldCert.privateKey };
    certDownloads = 0;
    await expect(p.combineQuery('C20250314120301')).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    expect(certDownloads).toBe(0);
    c.close();
  });
});
