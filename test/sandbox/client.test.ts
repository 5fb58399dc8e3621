/** The project's APIv3 client end to end against the sandbox, in both key modes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WechatPayClient } from '../../shared/wechatpay/client';
import { ApiError, VerificationError } from '../../shared/wechatpay/errors';
import { beijingDate } from '../../shared/wechatpay/time';
import { clientAs, combineRequest, receiver, sandboxPost, setup, waitFor, type Env } from './helpers';

for (const mode of ['public key', 'platform certificates'] as const) {
  describe(`WechatPayClient against the sandbox (${mode})`, () => {
    let env: Env;
    let client: WechatPayClient;
    let rx: Awaited<ReturnType<typeof receiver>>;
    const parsed: any[] = [];

    beforeAll(async () => {
      env = await setup({ certificates: mode === 'platform certificates', timeScale: 100 });
      client = WechatPayClient.fromCredentials(env.creds, { baseUrl: env.url, backoffBaseMs: 5, timeoutMs: 3000 });
      // The relay's job in miniature: verify + decrypt with the client, 204 or 401.
      rx = await receiver(async (_n, r) => {
        try {
          parsed.push(await client.parseNotification(r.headers as Record<string, string>, r.body));
          return 204;
        } catch {
          return 401;
        }
      });
    });
    afterAll(async () => {
      client.close();
      await rx.close();
      await env.close();
    });

    it('creates, is paid, receives and verifies the notification, queries SUCCESS', async () => {
      const req = combineRequest(env, {}, rx.url);
      const { code_url } = await client.combineNative(req);
      expect(code_url).toMatch(/^weixin:\/\//);
      // A re-request renews the code_url; the buyer pays the current one.
      const renewed = (await client.combineNative(req)).code_url;
      expect(renewed).not.toBe(code_url);
      expect((await client.combineQuery(req.combine_out_trade_no)).sub_orders[0]!.trade_state).toBe('NOTPAY');
      await sandboxPost(env, '/sandbox/pay', { code_url: renewed, probes: 1 });
      const n = await waitFor(() => parsed.find((p) => p.resource.combine_out_trade_no === req.combine_out_trade_no));
      expect(n.envelope.event_type).toBe('TRANSACTION.SUCCESS');
      const q = await client.combineQuery(req.combine_out_trade_no);
      expect(n.resource).toEqual(q);
      expect(q.sub_orders.map((s) => s.amount.total_amount)).toEqual([3800, 1250]);
      expect(q.sub_orders.every((s) => s.trade_state === 'SUCCESS' && s.transaction_id)).toBe(true);
      // The probe was refused by the client's verification, the real one accepted.
      expect(rx.received.filter((r) => String(r.headers['wechatpay-signature']).startsWith('WECHATPAY/SIGNTEST/')).length).toBeGreaterThanOrEqual(1);
      await expect(client.combineClose(req.combine_out_trade_no, { combine_appid: env.creds.appid, sub_orders: req.sub_orders.map((s) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no })) }))
        .rejects.toMatchObject({ code: 'ORDER_PAID' });
    });

    it('maps refusals to ApiError and closes after the minimum age', async () => {
      await expect(client.combineQuery('NOSUCHORDER01')).rejects.toMatchObject({ status: 404, code: 'ORDER_NOT_EXIST' });
      const req = combineRequest(env, {}, rx.url);
      await client.combineNative(req);
      const close = { combine_appid: env.creds.appid, sub_orders: req.sub_orders.map((s) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no })) };
      await expect(client.combineClose(req.combine_out_trade_no, close)).rejects.toBeInstanceOf(ApiError);
      await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 301 });
      try {
        await client.combineClose(req.combine_out_trade_no, close);
        expect((await client.combineQuery(req.combine_out_trade_no)).sub_orders[0]!.trade_state).toBe('CLOSED');
        await client.combineClose(req.combine_out_trade_no, close); // ORDER_CLOSED counts as closed
      } finally {
        await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 0 });
      }
    });

    it('retries injected SYSTEM_ERROR / FREQUENCY_LIMITED and refuses a bad response signature', async () => {
      const req = combineRequest(env, {}, rx.url);
      await sandboxPost(env, '/sandbox/control/faults', { path: '/v3/combine-transactions/native', kind: 'SYSTEM_ERROR', count: 1 });
      await sandboxPost(env, '/sandbox/control/faults', { path: '/v3/combine-transactions/native', kind: 'FREQUENCY_LIMITED', count: 1 });
      expect((await client.combineNative(req)).code_url).toMatch(/^weixin:/);
      await sandboxPost(env, '/sandbox/control/faults', { path: '/v3/combine-transactions/out-trade-no/', kind: 'BAD_SIGNATURE', count: 10 });
      try {
        await expect(client.combineQuery(req.combine_out_trade_no)).rejects.toBeInstanceOf(VerificationError);
      } finally {
        await fetch(env.url + '/sandbox/control/faults', { method: 'DELETE' });
      }
    });

    it("a participant's own client fetches its own trade bill (plain and gzip) matching the paid orders", async () => {
      const own = (i: number) => clientAs(env, env.participants[i]!);
      const day = beijingDate(Date.now());
      const req = combineRequest(env, {}, rx.url);
      const { code_url } = await client.combineNative(req);
      await sandboxPost(env, '/sandbox/pay', { code_url, notify: false });
      await expect(own(0).applyTradeBill({ bill_date: day })).rejects.toMatchObject({ code: 'STATEMENT_CREATING' });
      await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 36 * 3600 });
      try {
        for (const tar of [undefined, 'GZIP'] as const) {
          const bill = await own(1).fetchTradeBill({ bill_date: day, tar_type: tar });
          const row = bill.records.find((r) => r.out_trade_no === req.sub_orders[1]!.out_trade_no);
          expect(row).toMatchObject({ total_fee: 1250, attach: req.combine_out_trade_no });
          expect(bill.summary.total_count).toBe(bill.records.length);
          expect(bill.summary.total_fee).toBe(bill.records.reduce((s, r) => s + r.total_fee, 0));
        }
      } finally {
        await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: 0 });
      }
    });
  });
}
