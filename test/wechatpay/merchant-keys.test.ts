/**
 * Notifications among several merchants' keys (contract §1.1), with real clients against the
 * real sandbox in a mixed setup: the initiator in public-key mode, participants in certificate
 * mode, public-key mode and without keys. Each notification is signed with the WeChat Pay key
 * the sandbox holds for one merchant and encrypted with that merchant's APIv3 key.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSandbox, loadSandboxConfig, startSandbox, type InitResult, type SandboxConfig } from '../../shared/sandbox/index';
import { defaultKey } from '../../shared/sandbox/auth';
import { encryptResource } from '../../shared/wechatpay/aead';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { loadCredentials } from '../../shared/wechatpay/credentials';
import { MerchantKeysMissingError } from '../../shared/wechatpay/errors';
import { MerchantClients } from '../../shared/wechatpay/merchant-keys';
import { signBody } from '../../shared/wechatpay/sign';
import { formatBeijing } from '../../shared/wechatpay/time';
import type { KeyObject } from 'node:crypto';

let dir: string;
let init: InitResult;
let sb: { url: string; close(): Promise<void> };
let cfg: SandboxConfig;
let clients: MerchantClients<WechatPayClient>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wx-merchant-keys-'));
  init = await initSandbox(dir, { modes: { initiator: 'public_key', participants: ['certificates', 'public_key', 'none', 'certificates'] } });
  sb = await startSandbox({ dir, port: 0 });
  cfg = loadSandboxConfig(init.sandboxDir);
  clients = MerchantClients.fromCredentials(loadCredentials(init.merchantDir), (k) => WechatPayClient.fromCredentials(k, { baseUrl: sb.url, backoffBaseMs: 5 }));
});
afterAll(async () => {
  clients?.close();
  await sb?.close();
  rmSync(dir, { recursive: true, force: true });
});

const [CERT, PUB, NONE] = [0, 1, 2];
const mchidOf = (i: number) => init.participants[i]!.mchid;

/** A TRANSACTION.SUCCESS notification about `about`, signed with `signer`'s WeChat Pay key and encrypted with `encryptFor`'s APIv3 key. */
function notification(signer: string, about: string, encryptFor = signer, signWith?: { serial: string; key: KeyObject }) {
  const no = `C${Date.now()}${Math.floor(Math.random() * 1e6)}`;
  const plain = JSON.stringify({
    combine_appid: init.appid, combine_mchid: about, combine_out_trade_no: no,
    sub_orders: [{ mchid: mchidOf(PUB), trade_type: 'NATIVE', trade_state: 'SUCCESS', transaction_id: '4200000001', out_trade_no: `${no}S0`, success_time: formatBeijing(Date.now()), amount: { total_amount: 100, currency: 'CNY', payer_amount: 100, payer_currency: 'CNY' } }],
    combine_payer_info: { openid: 'oTest' },
  });
  const body = Buffer.from(JSON.stringify({
    id: randomUUID(), create_time: formatBeijing(Date.now()), resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
    resource: encryptResource(plain, cfg.keys.get(encryptFor)!.apiV3Key, 'transaction'),
  }));
  const k = signWith ?? defaultKey(cfg.keys.get(signer)!);
  return { headers: signBody(k.key, k.serial, body) as unknown as Record<string, string>, body };
}

describe('MerchantClients: one client per merchant, notifications by Wechatpay-Serial', () => {
  it('get(mchid) is that merchant\'s client; a participant without keys throws MERCHANT_KEYS_MISSING naming it', () => {
    expect(clients.get(init.mchid)).toBe(clients.initiator);
    expect(clients.get(mchidOf(CERT)).mchid).toBe(mchidOf(CERT));
    expect(clients.get(mchidOf(CERT)).certificateMode).toBe(true);
    expect(clients.get(mchidOf(PUB)).certificateMode).toBe(false);
    expect(clients.has(mchidOf(NONE))).toBe(false);
    expect(() => clients.get(mchidOf(NONE))).toThrowError(MerchantKeysMissingError);
    expect(() => clients.get(mchidOf(NONE))).toThrowError(expect.objectContaining({ code: 'MERCHANT_KEYS_MISSING', mchid: mchidOf(NONE) }));
  });

  it("verifies with the initiator's public key and decrypts with its APIv3 key", async () => {
    const n = notification(init.mchid, init.mchid);
    const r = await clients.parseNotification(n.headers, n.body);
    expect(r.mchid).toBe(init.mchid);
    expect(r.parsed.resource.combine_mchid).toBe(init.mchid);
  });

  it("a certificate-mode participant's new serial refreshes certificates once (bounded), then verifies and decrypts as that merchant", async () => {
    const certClients = clients.all.filter((c) => c.certificateMode);
    expect(certClients.map((c) => c.certificates!.downloads)).toEqual(certClients.map(() => 0));
    const n = notification(mchidOf(CERT), mchidOf(CERT));
    const r = await clients.parseNotification(n.headers, n.body);
    expect(r.mchid).toBe(mchidOf(CERT));
    // Every certificate-mode merchant was asked once; public-key merchants never download.
    expect(certClients.map((c) => c.certificates!.downloads)).toEqual(certClients.map(() => 1));
    // Unknown serials right after: no new downloads (at most one per merchant per minute).
    for (let i = 0; i < 5; i++) {
      const bogus = notification(mchidOf(CERT), mchidOf(CERT), mchidOf(CERT), { serial: `7${i}${'A'.repeat(38)}`, key: defaultKey(cfg.keys.get(mchidOf(CERT))!).key });
      await expect(clients.parseNotification(bogus.headers, bogus.body)).rejects.toMatchObject({ code: 'SERIAL_UNKNOWN' });
    }
    expect(certClients.map((c) => c.certificates!.downloads)).toEqual(certClients.map(() => 1));
  });

  it("a public-key participant's notification is decrypted with that participant's APIv3 key", async () => {
    const n = notification(mchidOf(PUB), mchidOf(PUB));
    expect((await clients.parseNotification(n.headers, n.body)).mchid).toBe(mchidOf(PUB));
  });

  it('a notification signed and encrypted for one merchant that claims to be about another is refused (MERCHANT_MISMATCH)', async () => {
    const n = notification(mchidOf(PUB), init.mchid);
    await expect(clients.parseNotification(n.headers, n.body)).rejects.toMatchObject({ code: 'MERCHANT_MISMATCH' });
  });

  it("signed with one merchant's key but encrypted with another's APIv3 key: refused (the tag does not open)", async () => {
    const n = notification(mchidOf(PUB), mchidOf(PUB), init.mchid);
    await expect(clients.parseNotification(n.headers, n.body)).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
  });

  it('a body altered after signing fails verification with the named key', async () => {
    const n = notification(mchidOf(PUB), mchidOf(PUB));
    const altered = Buffer.from(n.body.toString('utf8').replace('支付成功', '支付失败'));
    await expect(clients.parseNotification(n.headers, altered)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it("refund notifications (every-kind parse): decrypted with the refunding participant's keys, refused when about another merchant", async () => {
    const refund = (signer: string, about: string) => {
      const plain = JSON.stringify({ mchid: about, out_trade_no: 'C1S0', transaction_id: '4200000001', out_refund_no: `R${Date.now()}`, refund_id: '50000000001', refund_status: 'SUCCESS', success_time: formatBeijing(Date.now()), amount: { total: 100, refund: 50, payer_total: 100, payer_refund: 50 } });
      const body = Buffer.from(JSON.stringify({ id: randomUUID(), create_time: formatBeijing(Date.now()), resource_type: 'encrypt-resource', event_type: 'REFUND.SUCCESS', summary: '退款成功', resource: encryptResource(plain, cfg.keys.get(signer)!.apiV3Key, 'refund') }));
      const k = defaultKey(cfg.keys.get(signer)!);
      return { headers: signBody(k.key, k.serial, body) as unknown as Record<string, string>, body };
    };
    for (const who of [mchidOf(PUB), mchidOf(CERT)]) {
      const n = refund(who, who);
      const r = await clients.parseNotifyRequest(n.headers, n.body);
      expect(r.mchid).toBe(who);
      expect(r.parsed.kind).toBe('refund');
    }
    const cross = refund(mchidOf(PUB), mchidOf(CERT));
    await expect(clients.parseNotifyRequest(cross.headers, cross.body)).rejects.toMatchObject({ code: 'MERCHANT_MISMATCH' });
  });
});
