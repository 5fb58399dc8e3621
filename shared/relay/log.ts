/**
 * Structured JSON logs (pino) on stderr, so stdout stays for the one `listening` line and
 * CLI output. Secrets never reach a log line: auth headers, tokens, keys and decrypted
 * payloads are redacted by path, and code logs order numbers and codes, not resources.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'token', '*.token', 'apiv3_key', '*.apiv3_key', 'privateKey', '*.privateKey', 'apiV3Key', '*.apiV3Key',
  'resource', '*.resource', 'plaintext', '*.plaintext', 'ciphertext', '*.ciphertext',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  let dest: pino.DestinationStream | undefined = destination as pino.DestinationStream | undefined;
  if (!dest) {
    // Lines are batched (one write per 4 KB instead of one per line: under a notification
    // burst that is most of the logging cost) and flushed at least every second.
    const boom = pino.destination({ fd: 2, sync: false, minLength: 4096 });
    setInterval(() => boom.flush(), 1000).unref();
    dest = boom;
  }
  return pino(
    { level, base: { svc: 'relay' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    dest,
  );
}
