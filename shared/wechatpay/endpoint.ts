/**
 * What the endpoint modules (refund.ts, native.ts) need from a client: one signed request whose
 * 2xx answer has already been verified (Transport.request does both). They take it as a
 * parameter so that any client — one per merchant — can expose them as methods.
 */
import { ApiError, ResponseError } from './errors';
import type { ApiRequest, RawResponse } from './transport';

export interface SignedRequester {
  /** Signs, sends (with the client's retries), verifies the answer; non-2xx → ApiError. */
  request(req: ApiRequest): Promise<RawResponse>;
}

/** The verified answer's JSON body; ResponseError when it is not JSON. */
export function jsonAnswer(res: RawResponse, what: string): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new ResponseError(`${what} answer (HTTP ${res.status}) is not JSON`);
  }
}

/**
 * A close answer: 204 (or another 2xx) = closed. 202 = the buyer is paying right now
 * (`USER_PAYING`): an ApiError to query again after a few seconds (§4.3, addendum).
 */
export function checkCloseAnswer(res: RawResponse): void {
  if (res.status !== 202) return;
  let j: { code?: unknown; message?: unknown } | null = null;
  try {
    j = res.body.length ? JSON.parse(res.body.toString('utf8')) : null;
  } catch {
    j = null;
  }
  const code = typeof j?.code === 'string' && j.code ? j.code : 'USER_PAYING';
  const message = typeof j?.message === 'string' && j.message ? j.message : 'the buyer is paying: query again in a few seconds';
  throw new ApiError(202, code, message, undefined, res.headers['request-id']);
}

/** 400 ORDER_CLOSED on a close: already closed (e.g. a retried close) counts as closed. */
export function isAlreadyClosed(err: unknown): boolean {
  return err instanceof ApiError && err.status === 400 && err.code.toUpperCase() === 'ORDER_CLOSED';
}
