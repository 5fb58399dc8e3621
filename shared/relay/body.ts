/** The shared raw-body reader, with the relay's 413 error shape. */
import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError, readRawBody } from '../util/raw-body';
import { RelayError } from './errors';

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return await readRawBody(req, limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new RelayError(413, 'BODY_TOO_LARGE', err.message);
    throw err;
  }
}
