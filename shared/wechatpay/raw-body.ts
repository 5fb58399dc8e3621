/**
 * Reads a request body once, as raw bytes (signatures are verified on exactly these bytes),
 * refusing it as soon as it passes the limit. Shared by every server here: the relay's
 * notification endpoint, the sandbox and the terminal's web host.
 */
import type { IncomingMessage } from 'node:http';
import { WechatPayError } from './errors';

export class BodyTooLargeError extends WechatPayError {
  readonly limit: number;
  constructor(limit: number) {
    super('BODY_TOO_LARGE', `body over ${limit} bytes`);
    this.limit = limit;
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
    let done = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // A sender that goes on far past the limit is cut off (the promise is already settled).
      if (size > 16 * limit) return void req.destroy();
      if (done) return;
      if (size > limit) {
        done = true;
        req.resume();
        return reject(new BodyTooLargeError(limit));
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on('error', (e) => {
      if (done) return;
      done = true;
      reject(e);
    });
  });
}
