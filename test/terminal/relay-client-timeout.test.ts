/**
 * The relay client against a relay that stalls mid-answer (headers sent, body never finished): the
 * call must fail as RELAY_TIMEOUT, a TerminalError the cashier sees as "relay unreachable", not as a
 * raw AbortError with an unknown code.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerminalError } from '../../shared/terminal/errors';
import { RelayClient } from '../../shared/terminal/relay-client';

let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.write('{"combine_out_trade_no":'); // ...and nothing more
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((ok) => server.close(ok));
});

describe('relay client: answer stalls after the headers', () => {
  it('fails as RELAY_TIMEOUT', async () => {
    const client = new RelayClient({ baseUrl: url, token: 'tok', timeoutMs: 300 });
    const err = await client.me().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err).toMatchObject({ code: 'RELAY_TIMEOUT' });
  });
});
