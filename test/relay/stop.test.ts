/**
 * Stopping a relay while a terminal's socket is still starting (its first message being built from
 * the database): the stop completes and that socket is closed, it does not join a hub that is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { stopEngines } from '../helpers/stores';
import { createOrder, startEnv, type Env } from './env';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
  await stopEngines();
});

describe('relay stop', () => {
  it('completes while a socket is starting; that socket is closed', async () => {
    // Some orders, so the first message takes a few queries to build.
    for (let i = 0; i < 5; i++) await createOrder(env);
    const ws = new WebSocket(env.relayUrl.replace('http', 'ws') + '/v1/events', { headers: { Authorization: `Bearer ${env.manager}` } });
    ws.on('error', () => {});
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    // The relay has taken the socket (101) — its first message is being built now.
    await new Promise((r) => ws.once('upgrade', r));
    const stopped = await Promise.race([
      env.stopRelay().then(() => 'stopped'),
      new Promise((r) => setTimeout(() => r('still stopping after 20 s'), 20_000).unref()),
    ]);
    expect(stopped).toBe('stopped');
    expect([1001, 1006]).toContain(await closed);
  });
});
