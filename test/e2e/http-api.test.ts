/**
 * The renderer's HTTP client of the terminal API (renderer/src/api.ts), run in Node against a
 * real web host over the real terminal services: calls, error mapping, and the event stream
 * surviving a web host restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack';
import { startWebHost, type WebHost } from '../../shared/terminal/web-host';
import { defaultRendererDir } from '../../shared/terminal/embedded';
import { createHttpApi, type ApiFailure } from '../../renderer/src/api';
import type { TerminalEvent } from '../../shared/contracts/terminal-api';

let stack: Stack;
let host: WebHost;
const SECRET = 'e2e-http-api-secret-0123456789abcdef';

beforeAll(async () => {
  stack = await startStack();
  host = await startWebHost({ services: stack.services, rendererDir: defaultRendererDir(), secret: SECRET });
});

afterAll(async () => {
  await host?.close();
  await stack?.close();
});

const until = async (cond: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('renderer HTTP API client', () => {
  it('calls methods and turns refusals into coded failures', async () => {
    const api = createHttpApi(SECRET, host.origin);
    const merchants = await api.listMerchants();
    expect(merchants.length).toBeGreaterThanOrEqual(2);
    const err = (await api.getOrder('NO_SUCH_ORDER_123').catch((e: unknown) => e)) as ApiFailure;
    expect(err.name).toBe('ApiFailure');
    expect(err.code).toMatch(/NOT_FOUND/);
    const bad = (await createHttpApi('wrong-secret', host.origin).session().catch((e: unknown) => e)) as ApiFailure;
    expect(bad.code).toBe('SESSION_EXPIRED');
  });

  it('receives pushed events and keeps receiving them after the web host restarts', async () => {
    const api = createHttpApi(SECRET, host.origin);
    const events: TerminalEvent[] = [];
    let opens = 0;
    api.onStreamOpen!(() => { opens++; });
    api.onEvent((e) => events.push(e));
    await until(() => opens === 1);
    const merchants = await api.listMerchants();
    const create = (key: string) => api.createOrder({
      sub_orders: [
        { mchid: merchants[0]!.mchid, description: '面', amount: 1000 },
        { mchid: merchants[1]!.mchid, description: '茶', amount: 500 },
      ],
    }, key);
    const first = await create(`http-api-1-${Date.now()}`);
    await until(() => events.some((e) => e.type === 'order.updated' && e.order.combine_out_trade_no === first.combine_out_trade_no));

    const port = Number(new URL(host.origin).port);
    await host.close();
    await until(() => events.some((e) => e.type === 'connection' && e.state === 'connecting'));
    host = await startWebHost({ services: stack.services, rendererDir: defaultRendererDir(), secret: SECRET, port });
    await until(() => opens === 2);
    const second = await create(`http-api-2-${Date.now()}`);
    await until(() => events.some((e) => e.type === 'order.updated' && e.order.combine_out_trade_no === second.combine_out_trade_no));
    api.closeStream!();
  });
});
