/**
 * `npm run sandbox -- init DIR [--certificates] [--force]` and `npm run sandbox -- serve DIR`.
 * serve reads SANDBOX_PORT (default 8788, 0 = free port), SANDBOX_TIME_SCALE (default 1),
 * SANDBOX_CLOSE_MIN_AGE_SECONDS (default 300), SANDBOX_HOST (default 127.0.0.1),
 * SANDBOX_REFUND_DELAY_MS (2000), SANDBOX_REFUND_MIN_INTERVAL_SECONDS (60),
 * SANDBOX_DB_SYNCHRONOUS (NORMAL or FULL, default NORMAL), SANDBOX_ALLOWED_HOSTS (extra Host names, comma-separated).
 */
import { resolve } from 'node:path';
import { initSandbox } from './init';
import { startSandbox } from './server';

function fail(message: string): never {
  process.stderr.write(`sandbox: ${message}\n`);
  process.exit(2);
}

function numberEnv(name: string, fallback: number, check: (n: number) => boolean, what: string): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) fail(`${name}=${raw}: ${what}`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const [cmd, dir, ...rest] = argv;
  if (cmd === 'init') {
    if (!dir) fail('usage: init DIR [--certificates] [--force]');
    const unknown = rest.filter((a) => a !== '--certificates' && a !== '--force');
    if (unknown.length) fail(`unknown option ${unknown[0]}`);
    const r = await initSandbox(resolve(dir), { certificates: rest.includes('--certificates'), force: rest.includes('--force') });
    process.stdout.write(JSON.stringify({ event: 'initialized', merchant_dir: r.merchantDir, sandbox_dir: r.sandboxDir, mode: rest.includes('--certificates') ? 'certificates' : 'public_key' }) + '\n');
    return;
  }
  if (cmd === 'serve') {
    if (!dir) fail('usage: serve DIR');
    const port = numberEnv('SANDBOX_PORT', 8788, (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'must be a port number 0-65535');
    const timeScale = numberEnv('SANDBOX_TIME_SCALE', 1, (n) => n > 0, 'must be a positive number');
    const closeMinAgeSeconds = numberEnv('SANDBOX_CLOSE_MIN_AGE_SECONDS', 300, (n) => n >= 0, 'must be a number of seconds >= 0');
    const refundDelayMs = numberEnv('SANDBOX_REFUND_DELAY_MS', 2000, (n) => Number.isInteger(n) && n >= 0, 'must be a whole number of milliseconds >= 0');
    const refundMinIntervalSeconds = numberEnv('SANDBOX_REFUND_MIN_INTERVAL_SECONDS', 60, (n) => n >= 0, 'must be a number of seconds >= 0');
    const sync = process.env.SANDBOX_DB_SYNCHRONOUS || 'NORMAL';
    if (sync !== 'NORMAL' && sync !== 'FULL') fail(`SANDBOX_DB_SYNCHRONOUS=${sync}: must be NORMAL or FULL`);
    const log = process.env.SANDBOX_LOG === '1' ? (e: Record<string, unknown>) => process.stderr.write(JSON.stringify(e) + '\n') : undefined;
    const sb = await startSandbox({ dir: resolve(dir), host: process.env.SANDBOX_HOST || '127.0.0.1', port, timeScale, closeMinAgeSeconds, refundDelayMs, refundMinIntervalSeconds, dbSynchronous: sync, allowedHosts: (process.env.SANDBOX_ALLOWED_HOSTS ?? '').split(',').map((h) => h.trim()).filter(Boolean), log });
    process.stdout.write(JSON.stringify({ event: 'listening', url: sb.url }) + '\n');
    const stop = () => {
      void sb.close().then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return;
  }
  fail('usage: init DIR [--certificates] [--force] | serve DIR');
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => fail(`${err.code ? err.code + ': ' : ''}${err.message}`));
