/**
 * The client against our real sandbox (shared/sandbox) over loopback, in both key modes:
 * create → query → pay → query, close, trade bill (plain and gzip), and injected faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSandbox, startSandbox } from '../../shared/sandbox/index';
import { loadCredentials, type Credentials } from '../../shared/wechatpay/credentials';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { closeRequestFor } from '../../shared/wechatpay/combine';
import { beijingDate, formatBeijing } from '../../shared/wechatpay/time';
import type { CombineNativeRequest } from '../../shared/wechatpay/models';

for (const certificates of [false, true]) {
  describe(`client ↔ sandbox (${certificates ? 'platform certificates' : 'public key'})`, () => {
    let dir: string;
    let sb: { url: string; close(): Promise<void> };
    let creds: Credentials;
    let client: WechatPayClient;
    let seq = 0;

    const post = (path: string, body: unknown) => fetch(sb.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const order = (): CombineNativeRequest => {
      const no = `C${Date.now()}${seq++}`;
      return {
        combine_appid: creds.appid, combine_mchid: creds.mchid, combine_out_trade_no: no, notify_url: 'http://127.0.0.1:9/wechatpay/notify',
        time_expire: formatBeijing(Date.now() + 600_000),
        sub_orders: creds.subMerchants.slice(0, 2).map((s, i) => ({ mchid: s.mchid, attach: no, amount: { total_amount: 1000 + i, currency: 'CNY' as const }, out_trade_no: `${no}S${i}`, description: '测试-饮品' })),
      };
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'wx-interop-'));
      const { merchantDir } = await initSandbox(dir, { certificates });
      sb = await startSandbox({ dir, closeMinAgeSeconds: 0 });
      creds = loadCredentials(merchantDir);
      expect(!!creds.wechatpayPublicKey).toBe(!certificates);
      client = WechatPayClient.fromCredentials(creds, { baseUrl: sb.url, backoffBaseMs: 5 });
    });
    afterAll(async () => {
      client?.close();
      await sb?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('create → NOTPAY → pay → SUCCESS; close → CLOSED', async () => {
      const req = order();
      const { code_url } = await client.combineNative(req);
      expect(code_url).toMatch(/^weixin:\/\//);
      expect((await client.combineQuery(req.combine_out_trade_no)).sub_orders.map((s) => s.trade_state)).toEqual(['NOTPAY', 'NOTPAY']);
      expect((await post('/sandbox/pay', { code_url, notify: false })).status).toBe(200);
      const paid = await client.combineQuery(req.combine_out_trade_no);
      expect(paid.sub_orders.map((s) => [s.trade_state, s.amount.total_amount])).toEqual([['SUCCESS', 1000], ['SUCCESS', 1001]]);
      const other = order();
      await client.combineNative(other);
      await client.combineClose(other.combine_out_trade_no, closeRequestFor(other));
      expect((await client.combineQuery(other.combine_out_trade_no)).sub_orders.every((s) => s.trade_state === 'CLOSED')).toBe(true);
    });

    it('injected SYSTEM_ERROR is retried; BAD_SIGNATURE is refused', async () => {
      const req = order();
      await client.combineNative(req);
      const path = `/v3/combine-transactions/out-trade-no/${req.combine_out_trade_no}`;
      // Without retries the fault surfaces (so it really is injected)…
      const noRetry = WechatPayClient.fromCredentials(creds, { baseUrl: sb.url, maxRetries: 0 });
      expect((await post('/sandbox/control/faults', { path, kind: 'SYSTEM_ERROR', count: 1 })).status).toBeLessThan(300);
      await expect(noRetry.combineQuery(req.combine_out_trade_no)).rejects.toMatchObject({ status: 500, code: 'SYSTEM_ERROR', retryable: true });
      noRetry.close();
      // …and with them it is ridden out.
      expect((await post('/sandbox/control/faults', { path, kind: 'SYSTEM_ERROR', count: 1 })).status).toBeLessThan(300);
      await expect(client.combineQuery(req.combine_out_trade_no)).resolves.toMatchObject({ combine_out_trade_no: req.combine_out_trade_no });
      expect((await post('/sandbox/control/faults', { path, kind: 'BAD_SIGNATURE', count: 5 })).status).toBeLessThan(300);
      await expect(client.combineQuery(req.combine_out_trade_no)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
      await fetch(sb.url + '/sandbox/control/faults', { method: 'DELETE' });
    });

    it("a participant's own trade bill, applied for with its own keys, plain and gzip, hash checked", async () => {
      const req = order();
      const { code_url } = await client.combineNative(req);
      await post('/sandbox/pay', { code_url, notify: false });
      const date = beijingDate(Date.now());
      // Bills are ready the next morning (Beijing time): move the sandbox's business clock.
      await post('/sandbox/control/clock', { offset_seconds: 86_400 + 12 * 3600 });
      const keys = creds.participants.get(creds.subMerchants[1]!.mchid);
      expect(keys, 'sandbox init writes merchants/<mchid>/ for every participant').toBeDefined();
      expect(keys!.mchid).not.toBe(creds.mchid);
      const own = WechatPayClient.fromCredentials(keys!, { baseUrl: sb.url, backoffBaseMs: 5 });
      for (const tar of [undefined, 'GZIP' as const]) {
        const { records, summary } = await own.fetchTradeBill({ bill_date: date, tar_type: tar });
        const mine = records.find((r) => r.out_trade_no === `${req.combine_out_trade_no}S1`);
        expect(mine).toMatchObject({ mchid: creds.subMerchants[1]!.mchid, total_fee: 1001, trade_state: 'SUCCESS', attach: req.combine_out_trade_no });
        expect(summary.total_count).toBe(records.length);
        expect(summary.total_fee).toBe(records.reduce((a, r) => a + r.total_fee, 0));
        // Its own bill holds its own rows only.
        expect(records.every((r) => r.mchid === keys!.mchid)).toBe(true);
      }
      own.close();
      await post('/sandbox/control/clock', { offset_seconds: 0 });
    });
  });
}
