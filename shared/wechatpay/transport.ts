/**
 * HTTP for the APIv3 client. The body is serialized once and those exact bytes are signed and
 * sent; the response is read as raw bytes and verified before anything parses it. Default
 * timeout on every call, bounded retries with backoff for idempotent calls, optional failover.
 */
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import type { Readable } from 'node:stream';
import { ApiError, classify, TransportError, WechatPayError } from './errors';
import type { RequestSigner } from './sign';
import type { Verifier } from './verify';

export interface TransportOptions {
  signer: RequestSigner;
  verifier: Verifier;
  baseUrl: string;
  /** Tried after a network failure or a 5xx from the other host (the host is not signed). */
  backupBaseUrl?: string;
  /** Per attempt; default 10 s. */
  timeoutMs?: number;
  /** Extra attempts for idempotent calls; default 2 (so at most 3 attempts). */
  maxRetries?: number;
  userAgent?: string;
  /** Value of the `Wechatpay-Serial` request header (public key id or platform cert serial). */
  wechatpaySerial?: () => string | undefined;
  now?: () => number;
  /** Backoff before retry n (0-based): base·2ⁿ with jitter, capped. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export interface ApiRequest {
  method: 'GET' | 'POST';
  /** Path plus query string, already percent-encoded: signed exactly as sent. */
  path: string;
  /** Serialized once here; the same bytes are signed and sent. */
  body?: unknown;
  /**
   * Safe to send again after a failure. Every call this client makes is: query and bill apply
   * are reads, and WeChat Pay documents re-sending an identical create (same
   * combine_out_trade_no, same body) as the way to recover, and close as re-entrant (§4.1, §4.3).
   */
  idempotent: boolean;
  /** Verifier for this call; `null` = not signed (bill download). Default: the client's. */
  verifier?: Verifier | null;
  /** Accept header; default application/json. */
  accept?: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const DEFAULT_UA = `combine-pos-wechatpay/0.1 (node ${process.versions.node})`;

function flatHeaders(h: AxiosResponse['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v === undefined || v === null) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** A non-2xx answer → ApiError (error bodies are not signed, per the SDKs: §2.1 rule 3). */
export function apiErrorFrom(status: number, headers: Record<string, string>, body: Buffer): ApiError {
  const requestId = headers['request-id'];
  let code = `HTTP_${status}`;
  let message = `WeChat Pay answered HTTP ${status}`;
  let detail: unknown;
  const text = body.toString('utf8');
  try {
    const j = JSON.parse(text) as { code?: unknown; message?: unknown; detail?: unknown };
    if (j && typeof j === 'object') {
      if (typeof j.code === 'string' && j.code) code = j.code;
      if (typeof j.message === 'string' && j.message) message = j.message;
      detail = j.detail;
    }
  } catch {
    if (text.trim()) message += `: ${text.trim().slice(0, 200)}`;
  }
  return new ApiError(status, code, message, detail, requestId);
}

function transportError(err: unknown, url: string): WechatPayError {
  if (err instanceof WechatPayError) return err;
  const e = err as { code?: string; message?: string };
  if (e?.code === 'ECONNABORTED' || e?.code === 'ETIMEDOUT' || /timeout/i.test(e?.message ?? '')) {
    return new TransportError('TIMEOUT', `no answer from ${url} in time`, err);
  }
  return new TransportError('NETWORK_ERROR', `request to ${url} failed: ${e?.code ?? e?.message ?? String(err)}`, err);
}

/**
 * Worth another attempt now: network trouble, 5xx/429/SYSTEM_ERROR, or a signature probe (the
 * one classification in errors.ts). A bill still being generated needs ~30 min, not a retry.
 */
export function shouldRetry(err: unknown): boolean {
  return classify(err).retryNow;
}

function switchesHost(err: unknown): boolean {
  return err instanceof TransportError || (err instanceof ApiError && err.status >= 500);
}

export class Transport {
  private readonly http: AxiosInstance;
  private readonly bases: string[];
  private readonly maxRetries: number;
  private readonly now: () => number;
  private readonly ua: string;
  /** Index of the host that answered last: a failover sticks until that host fails too. */
  private current = 0;

  constructor(private readonly opts: TransportOptions) {
    this.bases = [opts.baseUrl, ...(opts.backupBaseUrl ? [opts.backupBaseUrl] : [])].map((b) => b.replace(/\/+$/, ''));
    for (const b of this.bases) {
      const u = new URL(b); // throws on junk: found at construction, not on the first sale
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError(`base URL must be http(s): ${b}`);
    }
    this.maxRetries = opts.maxRetries ?? 2;
    this.now = opts.now ?? Date.now;
    this.ua = opts.userAgent ?? DEFAULT_UA;
    this.http = axios.create({
      timeout: opts.timeoutMs ?? 10_000,
      // Never follow redirects (the signed URL would change) nor environment proxies.
      maxRedirects: 0,
      proxy: false,
      validateStatus: () => true,
      // Bytes in, bytes out: axios must neither re-serialize the body nor parse the answer.
      transformRequest: [(d: unknown) => d],
      transformResponse: [(d: unknown) => d],
      responseType: 'arraybuffer',
    });
  }

  get baseUrl(): string {
    return this.bases[0]!;
  }

  /** Sends (with retries when idempotent) and returns a verified 2xx response. */
  async request(req: ApiRequest): Promise<RawResponse> {
    const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body), 'utf8');
    return this.withRetries(req.idempotent, async (base) => {
      const res = await this.send(base, req.method, req.path, body, req.accept ?? 'application/json', 'arraybuffer');
      const raw: RawResponse = { status: res.status, headers: flatHeaders(res.headers), body: Buffer.from(res.data as ArrayBuffer) };
      if (raw.status < 200 || raw.status > 299) throw apiErrorFrom(raw.status, raw.headers, raw.body);
      const verifier = req.verifier === undefined ? this.opts.verifier : req.verifier;
      // A response that fails verification is an error; its content is never used.
      if (verifier) await verifier.verify(raw.headers, raw.body);
      return raw;
    });
  }

  /** GET whose 2xx body is streamed, unverified (the bill file: checked by its hash instead). */
  async stream(path: string, idempotent = true): Promise<{ status: number; headers: Record<string, string>; stream: Readable }> {
    return this.withRetries(idempotent, async (base) => {
      const res = await this.send(base, 'GET', path, undefined, '*/*', 'stream');
      const headers = flatHeaders(res.headers);
      const stream = res.data as Readable;
      if (res.status < 200 || res.status > 299) {
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(c as Buffer);
        throw apiErrorFrom(res.status, headers, Buffer.concat(chunks));
      }
      return { status: res.status, headers, stream };
    });
  }

  /**
   * The 2xx body of `stream(path)` as chunks, failing with TransportError TIMEOUT when no byte
   * arrives for `timeoutMs`: axios's timeout ends once the headers are in, and a download that
   * stalls part-way would otherwise hang its caller (a bill run) for good. Only the wait for the
   * next chunk is timed, never the consumer's own work between chunks.
   */
  async *streamChunks(path: string): AsyncGenerator<Buffer> {
    const r = await this.stream(path);
    const idleMs = this.opts.timeoutMs ?? 10_000;
    const it = (r.stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TransportError('TIMEOUT', `download ${path.split('?')[0]} stalled: no data for ${idleMs} ms`)), idleMs);
        });
        let n: IteratorResult<Buffer>;
        try {
          n = await Promise.race([it.next(), stalled]);
        } finally {
          clearTimeout(timer);
        }
        if (n.done) return;
        yield n.value;
      }
    } finally {
      // Ends the response (and its socket) however the iteration stops.
      r.stream.destroy();
    }
  }

  private async withRetries<T>(idempotent: boolean, attempt: (base: string) => Promise<T>): Promise<T> {
    const retries = idempotent ? this.maxRetries : 0;
    for (let n = 0; ; n++) {
      const index = this.current;
      try {
        return await attempt(this.bases[index]!);
      } catch (err) {
        if (n >= retries || !shouldRetry(err)) throw err;
        if (this.bases.length > 1 && switchesHost(err) && this.current === index) this.current = (index + 1) % this.bases.length;
        await sleep(this.backoff(n));
      }
    }
  }

  private backoff(n: number): number {
    const base = this.opts.backoffBaseMs ?? 200;
    const max = this.opts.backoffMaxMs ?? 5_000;
    const exp = Math.min(max, base * 2 ** n);
    // "Equal jitter": at least half the exponential step, so retries spread but still back off.
    return exp / 2 + Math.random() * (exp / 2);
  }

  private async send(base: string, method: 'GET' | 'POST', path: string, body: Buffer | undefined, accept: string, responseType: 'arraybuffer' | 'stream'): Promise<AxiosResponse> {
    if (!path.startsWith('/')) throw new TypeError(`request path must start with /: ${path}`);
    const url = new URL(base + path);
    // Sign the path and query exactly as they will go on the wire (after URL normalization).
    const signedUrl = url.pathname + url.search;
    const headers: Record<string, string> = {
      Accept: accept,
      'User-Agent': this.ua,
      Authorization: this.opts.signer.authorization(method, signedUrl, body ?? '', this.now()),
    };
    if (body) headers['Content-Type'] = 'application/json';
    const serial = this.opts.wechatpaySerial?.();
    if (serial) headers['Wechatpay-Serial'] = serial;
    try {
      return await this.http.request({ method, url: url.href, data: body, headers, responseType });
    } catch (err) {
      throw transportError(err, url.origin + url.pathname);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
