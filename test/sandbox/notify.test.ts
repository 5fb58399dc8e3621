/** Notifications: content, signature, retry schedule (scaled), timeouts, probes, duplicates, restarts. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptResource } from '../../shared/wechatpay/aead';
import { RETRY_SCHEDULE_SECONDS } from '../../shared/sandbox';
import { combineRequest, receiver, sandboxGet, sandboxPost, send, setup, waitFor, type Env, type Received } from './helpers';

const SCALE = 300;
let env: Env;
beforeAll(async () => {
  env = await setup({ timeScale: SCALE, notifyReplyTimeoutMs: 400 });
});
afterAll(() => env.close());

async function createAndPay(notifyUrl: string, pay: Record<string, unknown> = {}) {
  const req = combineRequest(env, {}, notifyUrl);
  const c = await send(env, 'POST', '/v3/combine-transactions/native', req);
  expect(c.status).toBe(200);
  const p = await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, ...pay });
  expect(p.status).toBe(200);
  return req;
}

async function deliveries(order: string): Promise<any[]> {
  return ((await sandboxGet(env, '/sandbox/notifications')).deliveries as any[]).filter((d) => d.order === order);
}

/** The receiver's own check: 204 for a verified notification, 401 otherwise. */
const verifying = async (_n: number, r: Received) => {
  try {
    await env.verifier.verify(r.headers as Record<string, string>, r.body);
    return 204;
  } catch {
    return 401;
  }
};

describe('notifications', () => {
  it('POSTs one signed TRANSACTION.SUCCESS whose resource decrypts to the query result', async () => {
    const rx = await receiver(verifying);
    try {
      const req = await createAndPay(rx.url);
      await waitFor(() => rx.received.length >= 1);
      await new Promise((r) => setTimeout(r, 100));
      expect(rx.received).toHaveLength(1);
      const r = rx.received[0]!;
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['wechatpay-signature-type']).toBe('WECHATPAY2-SHA256-RSA2048');
      await env.verifier.verify(r.headers as Record<string, string>, r.body);
      const env1 = JSON.parse(r.body.toString('utf8'));
      expect(env1).toMatchObject({ event_type: 'TRANSACTION.SUCCESS', resource_type: 'encrypt-resource', summary: '支付成功' });
      expect(env1.id).toHaveLength(36);
      expect(env1.create_time).toMatch(/\+08:00$/);
      expect(env1.resource).toMatchObject({ algorithm: 'AEAD_AES_256_GCM', associated_data: 'transaction', original_type: 'transaction' });
      expect(env1.resource.nonce).toHaveLength(12);
      const resource = JSON.parse(decryptResource(env1.resource, env.creds.apiV3Key).toString('utf8'));
      const q = await send(env, 'GET', `/v3/combine-transactions/out-trade-no/${req.combine_out_trade_no}`);
      expect(resource).toEqual(q.json);
      expect(resource.sub_orders.map((s: any) => s.trade_state)).toEqual(['SUCCESS', 'SUCCESS']);
      const log = await deliveries(req.combine_out_trade_no);
      expect(log).toMatchObject([{ kind: 'delivery', attempt: 1, status: 204, ok: true }]);
      expect((await sandboxGet(env, '/sandbox/notifications')).pending).toEqual([]);
    } finally {
      await rx.close();
    }
  });

  it('retries non-2xx replies and timeouts on the scaled schedule, then stops after success', async () => {
    // 3 refusals, 1 silence (timeout), then success: 5 attempts.
    const rx = await receiver((n) => (n < 3 ? 500 : n === 3 ? -1 : 200));
    try {
      const req = await createAndPay(rx.url);
      const log = await waitFor(async () => {
        const l = await deliveries(req.combine_out_trade_no);
        return l.some((d) => d.ok) ? l : null;
      }, 20_000);
      expect(log.map((d) => d.attempt)).toEqual([1, 2, 3, 4, 5]);
      expect(log.map((d) => d.ok)).toEqual([false, false, false, false, true]);
      expect(log[0].status).toBe(500);
      expect(log[3].error).toMatch(/no reply/);
      // Gap between attempt k and k+1 ≈ duration of attempt k + schedule[k-1]/scale (lower bounds only).
      for (let k = 1; k < log.length; k++) {
        const expected = (RETRY_SCHEDULE_SECONDS[k - 1]! * 1000) / SCALE;
        const gap = log[k].at_ms - log[k - 1].at_ms;
        expect(gap, `gap before attempt ${k + 1}`).toBeGreaterThanOrEqual(expected + log[k - 1].duration_ms - 5);
        expect(gap).toBeLessThan(expected + log[k - 1].duration_ms + 3000); // generous: a shared, loaded machine
      }
      expect(log[4].at_ms - log[3].at_ms).toBeGreaterThanOrEqual(400); // the timed-out attempt waited for its reply
      await new Promise((r) => setTimeout(r, 300));
      expect(rx.received).toHaveLength(5);
    } finally {
      await rx.close();
    }
  });

  it('sends signature probes (refused by a verifying receiver) before the real one, and duplicates after', async () => {
    const rx = await receiver(verifying);
    try {
      const req = await createAndPay(rx.url, { probes: 1, duplicates: 2 });
      const log = await waitFor(async () => {
        const l = await deliveries(req.combine_out_trade_no);
        return l.length >= 4 ? l : null;
      });
      expect(log.map((d) => [d.kind, d.status])).toEqual([['probe', 401], ['delivery', 204], ['duplicate', 204], ['duplicate', 204]]);
      expect(String(rx.received[0]!.headers['wechatpay-signature'])).toMatch(/^WECHATPAY\/SIGNTEST\//);
      const ids = rx.received.map((r) => JSON.parse(r.body.toString()).id);
      expect(new Set(ids).size).toBe(1);
    } finally {
      await rx.close();
    }
  });

  it('pay with notify:false sends nothing', async () => {
    const rx = await receiver(() => 204);
    try {
      const req = await createAndPay(rx.url, { notify: false });
      await new Promise((r) => setTimeout(r, 200));
      expect(rx.received).toHaveLength(0);
      expect(await deliveries(req.combine_out_trade_no)).toEqual([]);
    } finally {
      await rx.close();
    }
  });

  it('keeps pending deliveries and orders across a restart, and resumes the schedule', async () => {
    let accept = false;
    const rx = await receiver(() => (accept ? 204 : 503));
    try {
      const req = await createAndPay(rx.url);
      await waitFor(async () => (await deliveries(req.combine_out_trade_no)).length >= 2);
      await env.restart({ timeScale: SCALE, notifyReplyTimeoutMs: 400 });
      const pending = (await sandboxGet(env, '/sandbox/notifications')).pending;
      expect(pending.find((p: any) => p.order === req.combine_out_trade_no)?.attempts).toBeGreaterThanOrEqual(2);
      accept = true;
      const log = await waitFor(async () => {
        const l = await deliveries(req.combine_out_trade_no);
        return l.some((d) => d.ok) ? l : null;
      }, 20_000);
      // Numbering continues from before the restart.
      expect(log.at(-1).attempt).toBe(log.length);
      expect(log.at(-1).attempt).toBeGreaterThanOrEqual(3);
      const q = await send(env, 'GET', `/v3/combine-transactions/out-trade-no/${req.combine_out_trade_no}`);
      expect(q.json.sub_orders[0].trade_state).toBe('SUCCESS');
    } finally {
      await rx.close();
    }
  });

  it('gives up after the 15 retries of the schedule (16 attempts)', async () => {
    await env.restart({ timeScale: 200_000, notifyReplyTimeoutMs: 400 });
    const rx = await receiver(() => 500);
    try {
      const req = await createAndPay(rx.url);
      await waitFor(async () => !(await sandboxGet(env, '/sandbox/notifications')).pending.some((p: any) => p.order === req.combine_out_trade_no), 15_000);
      const log = await deliveries(req.combine_out_trade_no);
      expect(log).toHaveLength(RETRY_SCHEDULE_SECONDS.length + 1);
      expect(log.every((d) => !d.ok)).toBe(true);
    } finally {
      await rx.close();
      await env.restart({ timeScale: SCALE, notifyReplyTimeoutMs: 400 });
    }
  });
});
