/**
 * Reads a request body once, as raw bytes (signatures are verified on exactly these bytes),
 * refusing it as soon as it passes the limit. The one reader of every server here: the relay's
 * notification endpoint, the sandbox and the terminal's web host. Plain Node with no dependency
 * on any part, so the web host need not depend on the APIv3 client (see test/deps.test.ts).
 */
import type { IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {
  readonly code = 'BODY_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`body over ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

export function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // drain unread, so the caller can still answer 413
    return Promise.reject(new BodyTooLargeError(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // A sender that keeps going far past the limit is cut off (the promise is already settled).
      if (size > 16 * limit) return void req.destroy();
      if (settled) return;
      if (size > limit) {
        settled = true;
        req.resume();
        return reject(new BodyTooLargeError(limit));
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on('error', (e) => {
      if (settled) return;
      settled = true;
      reject(e);
    });
  });
}
