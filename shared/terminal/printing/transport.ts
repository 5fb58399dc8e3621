/**
 * Sends a job's bytes to a network ESC/POS printer over raw TCP (port 9100) through
 * node-thermal-printer, and classifies failures for the cashier. The bytes are ours (GB18030
 * text, GS ( k QR); the library carries them through its interface seam, which takes any object
 * with `execute(buffer, options)`. We plug in our own TCP interface rather than the library's
 * network one: that one keeps its socket to itself and can hang when the peer goes quiet, so a
 * deadline around it left one socket open per hung attempt. Here the deadline destroys the socket.
 *
 * Every failure says whether the paper may have come out (`mayHavePrinted`): once bytes were
 * handed to a connected printer, a failure (no answer, printer reports offline, connection reset)
 * does not mean nothing printed — the printer may print its buffer later (cover closed, paper
 * loaded). The print queue never retries those by itself.
 */
import { connect } from 'node:net';
import ntp from 'node-thermal-printer';
import type { PrinterFailure } from '../../contracts/terminal-api';
import { PRINTER_PATTERN } from '../settings';

const { printer: ThermalPrinter, types: PrinterTypes } = ntp as unknown as {
  printer: new (cfg: object) => { setBuffer(b: Buffer): void; execute(o?: { waitForResponse?: boolean }): Promise<unknown> };
  types: { EPSON: string };
};

export class PrinterError extends Error {
  constructor(readonly failure: PrinterFailure, message: string, readonly mayHavePrinted = false) {
    super(message);
    this.name = 'PrinterError';
  }

  get code(): string {
    return `PRINTER_${this.failure.toUpperCase()}`;
  }
}

const NETWORK_DOWN = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ENETDOWN']);

/** Classifies a socket error; `sent`: whether any byte was handed to a connected printer. */
export function classifyPrinterError(err: unknown, target: string, sent = true): PrinterError {
  if (err instanceof PrinterError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED') {
    return new PrinterError('refused', `printer ${target} refused the connection (is it on port ${target.split(':').pop()}?)`, false);
  }
  if (NETWORK_DOWN.has(e?.code ?? '')) return new PrinterError('offline', `printer ${target} is offline (${e.code})`, false);
  if (e?.code === 'ETIMEDOUT' || /timeout/i.test(e?.message ?? '')) {
    return new PrinterError('timeout', `printer ${target} did not answer in time`, sent);
  }
  return new PrinterError('error', `printer ${target}: ${e?.code ?? e?.message ?? String(err)}`, sent);
}

export interface SendOptions {
  /** One deadline for connect, write and answer (default 5 s). */
  timeoutMs?: number;
  /** Wait for the printer's answer to the DLE EOT status request appended to the job. */
  waitForAck?: boolean;
}

/** Sends `bytes` to `tcp://host:port`; resolves when written (and acknowledged with waitForAck). */
export async function sendToPrinter(uri: string, bytes: Buffer, opts: SendOptions = {}): Promise<void> {
  const m = PRINTER_PATTERN.exec(uri);
  if (!m) throw new PrinterError('error', `not a network printer address: ${uri}`);
  const tcp = new DeadlineTcpInterface(m[1]!.replace(/^\[(.*)\]$/, '$1'), Number(m[2]), `${m[1]}:${m[2]}`, opts.timeoutMs ?? 5_000);
  const printer = new ThermalPrinter({ type: PrinterTypes.EPSON, interface: tcp });
  printer.setBuffer(bytes);
  await printer.execute({ waitForResponse: opts.waitForAck ?? false });
}

/** node-thermal-printer's interface seam: one connection per execute, always ended by us. */
class DeadlineTcpInterface {
  constructor(private readonly host: string, private readonly port: number, private readonly target: string, private readonly timeoutMs: number) {}

  getPrinterName(): string {
    return this.target;
  }

  async isPrinterConnected(): Promise<boolean> {
    return this.execute(Buffer.alloc(0)).then(() => true, () => false);
  }

  execute(bytes: Buffer, options: { waitForResponse?: boolean } = {}): Promise<void> {
    const { host, port, target, timeoutMs } = this;
    const waitForAck = options.waitForResponse === true;
    return new Promise<void>((resolve, reject) => {
      let sent = false;
      let settled = false;
      const socket = connect({ host, port });
      const finish = (err: PrinterError | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        // Always ours to end: no socket outlives its attempt, whatever the printer does.
        socket.destroy();
        if (err) reject(err);
        else resolve();
      };
      const deadline = setTimeout(() => {
        finish(new PrinterError('timeout', `printer ${target} did not ${sent ? 'answer' : 'accept the connection'} within ${timeoutMs} ms`, sent));
      }, timeoutMs);
      socket.once('connect', () => {
        sent = true;
        socket.write(bytes, (err) => {
          if (err) return finish(classifyPrinterError(err, target, true));
          // Without a status request: done once the bytes are handed to the OS; end politely.
          if (!waitForAck) {
            socket.end(() => finish(null));
          }
        });
      });
      socket.on('data', (answer: Buffer) => {
        if (!waitForAck || answer.length === 0) return;
        // DLE EOT 1 printer status: bit 3 set = offline (cover open, paper out, error) — the bytes
        // are in the printer's buffer and may print later, so the job is not done, but ambiguous.
        if ((answer[0]! & 0x08) !== 0) {
          return finish(new PrinterError('offline', `printer ${target} reports offline (cover open, paper out or error)`, true));
        }
        finish(null);
      });
      socket.on('error', (err) => finish(classifyPrinterError(err, target, sent)));
      socket.on('close', () => {
        if (!settled) finish(new PrinterError('error', `printer ${target} closed the connection without answering`, sent));
      });
    });
  }
}

/** What the printer answered to DLE EOT, classified (see PrinterState in the contract). */
export interface StatusAnswer {
  state: 'online' | 'offline' | 'paper-out' | 'timeout' | 'unreachable';
  raw: number[];
  message: string | null;
}

/** DLE EOT n: real-time status (1 printer, 4 roll paper sensor). */
const DLE_EOT = (n: number) => Buffer.from([0x10, 0x04, n]);

/**
 * Asks a network printer its real-time status: DLE EOT 1 (bit 3 = offline); when offline, DLE EOT 4
 * (bits 5-6 = roll paper end) tells "paper out" from other causes. A printer that answers the first
 * but not the second is reported offline (the safe reading: something needs the cashier's hands).
 * Written directly on a socket: a status check is a two-way dialogue, not a job to print.
 */
export function queryPrinterStatus(uri: string, timeoutMs = 3_000): Promise<StatusAnswer> {
  const m = PRINTER_PATTERN.exec(uri);
  if (!m) return Promise.resolve({ state: 'unreachable', raw: [], message: `not a network printer address: ${uri}` });
  const target = `${m[1]}:${m[2]}`;
  return new Promise<StatusAnswer>((resolve) => {
    const raw: number[] = [];
    let settled = false;
    let step: 1 | 4 = 1;
    let connected = false;
    const socket = connect({ host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) });
    const finish = (a: StatusAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket.destroy();
      resolve(a);
    };
    const deadline = setTimeout(() => {
      if (step === 4) return finish({ state: 'offline', raw, message: `printer ${target} reports offline (no paper sensor answer)` });
      finish({ state: 'timeout', raw, message: `printer ${target} did not ${connected ? 'answer the status request' : 'accept the connection'} within ${timeoutMs} ms` });
    }, timeoutMs);
    socket.once('connect', () => {
      connected = true;
      socket.write(DLE_EOT(1));
    });
    socket.on('data', (d: Buffer) => {
      for (const byte of d) {
        raw.push(byte);
        if (step === 1) {
          if ((byte & 0x08) === 0) return finish({ state: 'online', raw, message: null });
          step = 4;
          socket.write(DLE_EOT(4));
        } else {
          if ((byte & 0x60) !== 0) return finish({ state: 'paper-out', raw, message: `printer ${target} is out of paper` });
          return finish({ state: 'offline', raw, message: `printer ${target} reports offline (cover open or error)` });
        }
      }
    });
    socket.on('error', (err) => {
      const e = classifyPrinterError(err, target, connected);
      finish({ state: e.failure === 'refused' || e.failure === 'offline' ? 'unreachable' : e.failure === 'timeout' ? 'timeout' : 'unreachable', raw, message: e.message });
    });
    socket.on('close', () => finish({ state: 'timeout', raw, message: `printer ${target} closed the connection without answering` }));
  });
}
