/** Test helpers for the sandbox: a fresh sandbox on 127.0.0.1:0 and raw signed APIv3 requests. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { initSandbox, startSandbox, type InitOptions, type InitResult, type SandboxOptions } from '../../shared/sandbox';
import { WechatPayClient, type WechatPayClientOptions } from '../../shared/wechatpay/client';
import { loadCredentials, type Credentials, type MerchantKeys } from '../../shared/wechatpay/credentials';
import { RequestSigner, createNonce, formatAuthorization, requestMessage, signMessage, unixSeconds } from '../../shared/wechatpay/sign';
import { PublicKeySource, Verifier } from '../../shared/wechatpay/verify';
import type { CombineNativeRequest } from '../../shared/wechatpay/models';

/** One merchant's own keys (root folder for the initiator, merchants/<mchid>/ for a participant), parsed once by the product's loader. */
export type MerchantCreds = MerchantKeys;

/** Every merchant with a credentials folder, the initiator included, by mchid. */
export function merchantsOf(creds: Credentials): Map<string, MerchantCreds> {
  return new Map<string, MerchantCreds>([[creds.mchid, creds], ...creds.participants]);
}

export interface Env {
  dir: string;
  url: string;
  creds: Credentials;
  init: InitResult;
  /** Every merchant with a credentials folder, the initiator included, by mchid. */
  merchants: Map<string, MerchantCreds>;
  /** Participants' mchids in sub_merchants order (with keys or not). */
  participants: string[];
  /** Keys that sign the sandbox's answers, by serial (public key id or platform serials). */
  wechatKeys: Map<string, KeyObject>;
  verifier: Verifier;
  restart(opts?: Partial<SandboxOptions>): Promise<void>;
  close(): Promise<void>;
}

type WechatSide = { mchid: string; public_key_id?: string; public_key_file?: string; platform_certificates: { serial_no: string; cert_file: string }[] };

export async function setup(opts: { certificates?: boolean; modes?: InitOptions['modes'] } & Partial<SandboxOptions> = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
  const { certificates, modes, ...sandboxOpts } = opts;
  const init = await initSandbox(dir, { certificates, modes });
  const creds = loadCredentials(join(dir, 'merchant'));
  const merchants = merchantsOf(creds);
  const sbDir = join(dir, 'sandbox');
  const cfg = JSON.parse(readFileSync(join(sbDir, 'sandbox.json'), 'utf8')) as WechatSide & { participants: WechatSide[] };
  // Every key the sandbox may sign an answer or notification with, of every merchant.
  const wechatKeys = new Map<string, KeyObject>();
  for (const m of [cfg, ...cfg.participants]) {
    if (m.public_key_id) wechatKeys.set(m.public_key_id, createPublicKey(createPrivateKey(readFileSync(join(sbDir, m.public_key_file!)))));
    for (const c of m.platform_certificates) wechatKeys.set(c.serial_no, new X509Certificate(readFileSync(join(sbDir, c.cert_file))).publicKey);
  }
  const base: SandboxOptions = { dir, port: 0, closeMinAgeSeconds: 300, ...sandboxOpts };
  let running = await startSandbox(base);
  const env: Env = {
    dir,
    url: running.url,
    creds,
    init,
    merchants,
    participants: init.participants.map((p) => p.mchid),
    wechatKeys,
    verifier: new Verifier({ keys: new PublicKeySource(wechatKeys) }),
    async restart(more = {}) {
      await running.close();
      running = await startSandbox({ ...base, ...more });
      env.url = running.url;
    },
    async close() {
      await running.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

export interface RawResponse {
  status: number;
  headers: Headers;
  raw: Buffer;
  json: any;
}

export interface SendOptions {
  /** Replace the Authorization header entirely (null = none). */
  authorization?: string | null;
  headers?: Record<string, string>;
  /** Omit standard headers. */
  omit?: string[];
  /** Sign at another time (ms). */
  now?: number;
  /** Sign as this merchant (its own key and serial; default the initiator). */
  as?: string;
}

function merchant(env: Env, mchid: string | undefined): MerchantCreds {
  const m = env.merchants.get(mchid ?? env.creds.mchid);
  if (!m) throw new Error(`test setup: no credentials folder for mchid ${mchid}`);
  return m;
}

/** A correctly signed request unless told otherwise; body sent exactly as given. */
export async function send(env: Env, method: string, path: string, body?: string | object, o: SendOptions = {}): Promise<RawResponse> {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const m = merchant(env, o.as);
  const signer = new RequestSigner({ mchid: m.mchid, serialNo: m.certSerial, privateKey: m.privateKey });
  const headers: Record<string, string> = {
    Accept: 'application/json',
    'User-Agent': 'sandbox-test/1.0',
    Authorization: signer.authorization(method, path, text, o.now),
  };
  if (text) headers['Content-Type'] = 'application/json';
  if (o.authorization !== undefined) {
    if (o.authorization === null) delete headers.Authorization;
    else headers.Authorization = o.authorization;
  }
  Object.assign(headers, o.headers ?? {});
  for (const h of o.omit ?? []) delete headers[h];
  // node:http rather than fetch: fetch adds its own Accept and User-Agent, which some tests omit.
  const res = await new Promise<{ status: number; headers: Headers; raw: Buffer }>((resolve, reject) => {
    const req = httpRequest(env.url + path, { method, headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: r.statusCode!, headers: h, raw: Buffer.concat(chunks) });
      });
      r.on('error', reject);
    });
    req.on('error', reject);
    req.end(text || undefined);
  });
  const raw = res.raw;
  let json: unknown;
  try {
    json = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, raw, json };
}

/** Builds an Authorization header by hand, with any field overridden. */
export function manualAuthorization(env: Env, method: string, path: string, body: string, over: Partial<{ as: string; mchid: string; serial_no: string; timestamp: string; nonce_str: string; key: KeyObject; signedUrl: string; signedMethod: string; signedBody: string }> = {}): string {
  const m = merchant(env, over.as);
  const timestamp = over.timestamp ?? String(unixSeconds());
  const nonce = over.nonce_str ?? createNonce();
  const msg = requestMessage(over.signedMethod ?? method, over.signedUrl ?? path, timestamp, nonce, over.signedBody ?? body);
  return formatAuthorization({
    mchid: over.mchid ?? m.mchid,
    nonce_str: nonce,
    timestamp,
    serial_no: over.serial_no ?? m.certSerial,
    signature: signMessage(over.key ?? m.privateKey, msg),
  });
}

let seq = 0;
/** Order numbers unique within a test run. */
export function orderNo(prefix = 'T'): string {
  seq += 1;
  return `${prefix}${Date.now().toString(36)}${seq.toString().padStart(4, '0')}`.slice(0, 32);
}

export function combineRequest(env: Env, over: Partial<CombineNativeRequest> = {}, notifyUrl = 'http://127.0.0.1:9/notify'): CombineNativeRequest {
  const no = over.combine_out_trade_no ?? orderNo('C');
  const subs = env.creds.subMerchants;
  return {
    combine_appid: env.creds.appid,
    combine_mchid: env.creds.mchid,
    combine_out_trade_no: no,
    sub_orders: [
      { mchid: subs[0]!.mchid, attach: no, amount: { total_amount: 3800, currency: 'CNY' }, out_trade_no: `${no}A`.slice(-32), description: '红烧牛肉面' },
      { mchid: subs[1]!.mchid, attach: no, amount: { total_amount: 1250, currency: 'CNY' }, out_trade_no: `${no}B`.slice(-32), description: '珍珠奶茶' },
    ],
    notify_url: notifyUrl,
    ...over,
  };
}

/** An APIv3 client of the project signing as that merchant, verifying with its own keys. */
export function clientAs(env: Env, mchid: string, opts: Partial<WechatPayClientOptions> = {}): WechatPayClient {
  const m = merchant(env, mchid);
  return new WechatPayClient({ baseUrl: env.url, mchid: m.mchid, certSerial: m.certSerial, privateKey: m.privateKey, apiV3Key: m.apiV3Key, wechatpayPublicKey: m.wechatpayPublicKey, backoffBaseMs: 5, timeoutMs: 3000, ...opts });
}

export async function sandboxPost(env: Env, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(env.url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

export async function sandboxGet(env: Env, path: string): Promise<any> {
  const res = await fetch(env.url + path);
  return res.json();
}

export interface Received {
  at: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A notify receiver on 127.0.0.1:0 that answers with `reply(n)` for the n-th request (0-based). */
export async function receiver(reply: (n: number, r: Received) => number | Promise<number>): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const r = { at: Date.now(), headers: req.headers, body: Buffer.concat(chunks) };
      received.push(r);
      const status = await reply(received.length - 1, r);
      if (status < 0) return; // never answer: a timeout
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(status >= 300 ? JSON.stringify({ code: 'FAIL', message: 'test says no' }) : '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/wechatpay/notify`,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, stepMs = 25): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const unixNow = () => unixSeconds();
