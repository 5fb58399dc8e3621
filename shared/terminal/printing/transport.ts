/**
 * Sends a job's bytes to a network ESC/POS printer over raw TCP (port 9100) with
 * node-thermal-printer's network interface, and classifies failures for the cashier.
 * We only use the library for the TCP send: the bytes are ours (GB18030 text, GS ( k QR).
 * Its execute() can hang when the peer closes without answering, so a deadline wraps it.
 */
import ntp from 'node-thermal-printer';
import type { PrinterFailure } from '../../contracts/terminal-api';
import { PRINTER_PATTERN } from '../settings';

const { printer: ThermalPrinter, types: PrinterTypes } = ntp as unknown as {
  printer: new (cfg: object) => { setBuffer(b: Buffer): void; execute(o?: { waitForResponse?: boolean }): Promise<unknown> };
  types: { EPSON: string };
};

export class PrinterError extends Error {
  constructor(readonly failure: PrinterFailure, message: string) {
    super(message);
    this.name = 'PrinterError';
  }

  get code(): string {
    return `PRINTER_${this.failure.toUpperCase()}`;
  }
}

export function classifyPrinterError(err: unknown, target: string): PrinterError {
  if (err instanceof PrinterError) return err;
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ECONNREFUSED':
      return new PrinterError('refused', `printer ${target} refused the connection (is it on port ${target.split(':').pop()}?)`);
    case 'EHOSTUNREACH': case 'ENETUNREACH': case 'EHOSTDOWN': case 'ENOTFOUND': case 'EAI_AGAIN': case 'ENETDOWN':
      return new PrinterError('offline', `printer ${target} is offline (${e.code})`);
    case 'ETIMEDOUT':
      return new PrinterError('timeout', `printer ${target} did not answer in time`);
    default:
      if (/timeout/i.test(e?.message ?? '')) return new PrinterError('timeout', `printer ${target} did not answer in time`);
      return new PrinterError('error', `printer ${target}: ${e?.code ?? e?.message ?? String(err)}`);
  }
}

export interface SendOptions {
  timeoutMs?: number;
  /** Wait for the printer's answer to the DLE EOT status request appended to the job. */
  waitForAck?: boolean;
}

/** Sends `bytes` to `tcp://host:port`; resolves when written (and acknowledged with waitForAck). */
export async function sendToPrinter(uri: string, bytes: Buffer, opts: SendOptions = {}): Promise<void> {
  const m = PRINTER_PATTERN.exec(uri);
  if (!m) throw new PrinterError('error', `not a network printer address: ${uri}`);
  const target = `${m[1]}:${m[2]}`;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const p = new ThermalPrinter({ type: PrinterTypes.EPSON, interface: `tcp://${target}`, options: { timeout: timeoutMs } });
  p.setBuffer(bytes);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PrinterError('timeout', `printer ${target} did not answer within ${timeoutMs} ms`)), timeoutMs + 50);
  });
  let answer: unknown;
  try {
    answer = await Promise.race([p.execute({ waitForResponse: !!opts.waitForAck }), deadline]);
  } catch (err) {
    throw classifyPrinterError(err, target);
  } finally {
    clearTimeout(timer);
  }
  // DLE EOT 1 printer status: bit 3 set = offline (cover open, paper out, error) — the bytes are
  // in the printer's buffer but will not print, so the job is not done.
  if (opts.waitForAck && Buffer.isBuffer(answer) && answer.length > 0 && (answer[0]! & 0x08) !== 0) {
    throw new PrinterError('offline', `printer ${target} reports offline (cover open, paper out or error)`);
  }
}
