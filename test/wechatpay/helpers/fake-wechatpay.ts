/**
 * A small real HTTP server playing WeChat Pay for the client's tests (loopback, port 0).
 * It checks every request's Authorization against the merchant public key over the raw bytes
 * it received, records requests, and signs answers with the key it is told to use.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KeyObject } from 'node:crypto';
import { parseAuthorization, requestMessage, signBody, verifyMessage, PROBE_PREFIX } from '../../../shared/wechatpay/sign';

export interface RecordedRequest {
  method: string;
  /** Path + query as received on the wire. */
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** The Authorization signature verified over exactly these bytes. */
  signatureOk: boolean;
  nonce?: string;
}

export interface Reply {
  status?: number;
  body?: string | Buffer | object;
  headers?: Record<string, string>;
  /** Key that signs the answer; default the server's current signer; null = unsigned. */
  signer?: { serial: string; key: KeyObject } | null;
  /** Send a WECHATPAY/SIGNTEST probe signature instead of a real one. */
  probe?: boolean;
  /** Shift the signed timestamp (seconds). */
  timestampOffset?: number;
  /** Alter the body after signing (tamper test). */
  tamper?: (body: Buffer) => Buffer;
  /** Wait before answering. */
  delayMs?: number;
}

export type Handler = (req: RecordedRequest) => Reply | Promise<Reply>;

export interface FakeWechatPay {
  url: string;
  requests: RecordedRequest[];
  signer: { serial: string; key: KeyObject };
  on(method: string, pathPrefix: string, handler: Handler): void;
  close(): Promise<void>;
}

export async function startFakeWechatPay(opts: { merchantPublicKey: KeyObject; signer: { serial: string; key: KeyObject } }): Promise<FakeWechatPay> {
  const routes: { method: string; prefix: string; handler: Handler }[] = [];
  const requests: RecordedRequest[] = [];
  const fake: FakeWechatPay = {
    url: '',
    requests,
    signer: opts.signer,
    on(method, prefix, handler) {
      routes.unshift({ method, prefix, handler }); // later registrations win
    },
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const auth = parseAuthorization(req.headers.authorization);
    const url = req.url ?? '/';
    const signatureOk = !!auth && verifyMessage(opts.merchantPublicKey, requestMessage(req.method!, url, auth.timestamp, auth.nonce_str, body), auth.signature);
    const rec: RecordedRequest = { method: req.method!, url, headers: req.headers, body, signatureOk, nonce: auth?.nonce_str };
    requests.push(rec);
    let reply: Reply;
    if (!signatureOk) {
      reply = { status: 401, body: { code: 'SIGN_ERROR', message: '签名错误' }, signer: null };
    } else {
      const route = routes.find((r) => r.method === req.method && url.startsWith(r.prefix));
      reply = route ? await route.handler(rec) : { status: 404, body: { code: 'NOT_FOUND', message: 'no route' }, signer: null };
    }
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    const status = reply.status ?? 200;
    const out = reply.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(reply.body) ? reply.body : Buffer.from(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body), 'utf8');
    const headers: Record<string, string> = { 'Request-ID': `08F${requests.length}-0`, ...(out.length ? { 'Content-Type': 'application/json' } : {}), ...reply.headers };
    const signer = reply.signer === undefined ? fake.signer : reply.signer;
    if (signer) {
      const signed = signBody(signer.key, signer.serial, out, Date.now() + (reply.timestampOffset ?? 0) * 1000);
      Object.assign(headers, signed);
      if (reply.probe) headers['Wechatpay-Signature'] = PROBE_PREFIX + 'dGVzdA==';
    }
    const sent = reply.tamper ? reply.tamper(out) : out;
    res.writeHead(status, { ...headers, 'Content-Length': String(sent.length) });
    res.end(sent);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
