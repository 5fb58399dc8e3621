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

describe("participants' own clients: basic Native and refunds end to end (public-key and certificate merchants)", () => {
  let env: Env;
  let rx: Awaited<ReturnType<typeof receiver>>;
  const parsed: { mchid: string; n: any }[] = [];
  const clients = new Map<string, WechatPayClient>();

  beforeAll(async () => {
    env = await setup({ timeScale: 100, refundDelayMs: 20, modes: { participants: ['public_key', 'certificates'] } });
    for (const m of env.participants.slice(0, 2)) clients.set(m, clientAs(env, m));
    // The receiver tries each merchant's parse-and-dispatch: only the right keys verify and decrypt.
    rx = await receiver(async (_n, r) => {
      for (const [mchid, c] of clients) {
        try {
          parsed.push({ mchid, n: await c.parseNotifyRequest(r.headers as Record<string, string>, r.body) });
          return 204;
        } catch {
          // not this merchant's
        }
      }
      return 401;
    });
  });
  afterAll(async () => {
    for (const c of clients.values()) c.close();
    await rx.close();
    await env.close();
  });

  it('sells alone with basic Native, is notified, refunds part, is notified again, reads REFUND', async () => {
    for (const mchid of env.participants.slice(0, 2)) {
      const client = clients.get(mchid)!;
      const out_trade_no = `B${Date.now().toString(36)}${mchid.slice(-4)}`;
      const { code_url } = await client.createNative({ appid: env.creds.appid, mchid, description: '单点牛肉面', out_trade_no, notify_url: rx.url, amount: { total: 2800 } });
      expect((await client.queryNative(out_trade_no)).trade_state).toBe('NOTPAY');
      await sandboxPost(env, '/sandbox/pay', { code_url });
      const paid = await waitFor(() => parsed.find((p) => p.n.kind === 'transaction' && p.n.resource.out_trade_no === out_trade_no));
      expect(paid.mchid).toBe(mchid);
      const q = await client.queryNative(out_trade_no);
      expect(paid.n.resource).toEqual(q);
      expect(await client.queryNativeById(q.transaction_id!)).toEqual(q);
      const refund = await client.createRefund({ out_trade_no, out_refund_no: `R${out_trade_no}`, reason: '少一份', notify_url: rx.url, amount: { refund: 800, total: 2800, currency: 'CNY' } });
      expect(refund.status).toBe('PROCESSING');
      const n = await waitFor(() => parsed.find((p) => p.n.kind === 'refund' && p.n.resource.out_refund_no === refund.out_refund_no));
      expect([n.mchid, n.n.eventType, n.n.resource.refund_status]).toEqual([mchid, 'REFUND.SUCCESS', 'SUCCESS']);
      expect((await client.queryRefund(refund.out_refund_no)).status).toBe('SUCCESS');
      expect((await client.queryNative(out_trade_no)).trade_state).toBe('REFUND');
    }
  });
});
