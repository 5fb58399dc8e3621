/**
 * The print queue: every slip/receipt becomes a job, persisted in the user data folder (0600),
 * printed one at a time. A failed job keeps its classified failure (shown to the cashier).
 *
 * Never the same paper twice by itself: a job is retried automatically (with backoff) only when
 * no byte reached the printer (connection refused, network down). After an ambiguous failure —
 * bytes delivered, then no answer, "offline" status (cover open, paper out: the printer prints its
 * buffer once fixed), connection reset, or the app stopped mid-job — the paper may have come or
 * may still come out, so only the cashier retries (`retry(id)`), and that paper is marked
 * REPRINT so two copies can be told apart. An automatic retry of a slip whose order is already
 * paid or closed is dropped (`wanted`, which may ask the relay: after a restart the order's state
 * is not known yet, and a job left unfinished then is an automatic retry like any other). `enqueue`/`retry` never reject for a printing problem:
 * the job carries it.
 * The preview printer completes jobs immediately with the rendered lines.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Order } from '../../contracts/relay-api';
import type { PrintJob, PrintKind } from '../../contracts/terminal-api';
import type { ShiftReport } from '../../contracts/counter-api';
import { TerminalError } from '../errors';
import { writeJsonAtomic, type StoredSettings } from '../settings';
import { renderEscPos } from './escpos';
import { renderPreview } from './preview';
import { buildReceipt } from './receipt';
import { buildRefundSlip } from './refund-slip';
import { buildShiftReport } from './shift-report';
import { classifyPrinterError, sendToPrinter, type SendOptions } from './transport';

interface JobRecord {
  job: PrintJob;
  /** The order of a slip or receipt; for a shift report (kind `shift`) its report instead. */
  order: Order;
  shift?: ShiftReport;
  merchantNames: Record<string, string>;
  /** Bytes may have reached the printer in an earlier attempt: the next paper is marked REPRINT. */
  mayHavePrinted?: boolean;
}

function isJobRecord(r: unknown): r is JobRecord {
  const x = r as JobRecord | null;
  return !!x && typeof x === 'object' && !!x.job && typeof x.job.id === 'string' && typeof x.job.state === 'string'
    && typeof x.job.created_at === 'string'
    && (x.job.kind === 'shift' ? !!x.shift && typeof x.shift.shift?.id === 'number' : !!x.order && typeof x.order.combine_out_trade_no === 'string')
    && !!x.merchantNames && typeof x.merchantNames === 'object';
}

export interface PrintQueueOptions {
  /** JSON file holding the jobs; omitted = in memory only. */
  path?: string;
  settings: () => Pick<StoredSettings, 'printer' | 'paper_width' | 'language' | 'qr_mode'> & Partial<Pick<StoredSettings, 'store_name' | 'store_address' | 'cashier_name'>>;
  send?: (uri: string, bytes: Buffer, opts: SendOptions) => Promise<void>;
  timeoutMs?: number;
  waitForAck?: boolean;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Jobs kept in the file (oldest finished ones dropped first). */
  keep?: number;
  /** Whether an automatic retry should still print this job (e.g. a slip of an order not yet paid). */
  wanted?: (job: PrintJob) => boolean | Promise<boolean>;
  /** Where problems nobody waits for are reported (the job file cannot be written, a bug). */
  log?: (message: string) => void;
}

export class PrintQueue extends EventEmitter<{ job: [PrintJob] }> {
  private records: JobRecord[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private timers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly opts: PrintQueueOptions) {
    super();
    if (opts.path) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(opts.path, 'utf8'));
        // Keep only well-formed records: a damaged file must not stop the till from starting.
        this.records = Array.isArray(parsed) ? parsed.filter(isJobRecord) : [];
      } catch {
        this.records = []; // missing or unreadable: start empty (jobs are reprintable on demand)
      }
      const dayAgo = Date.now() - 24 * 3600_000;
      for (const r of this.records) {
        r.job.retry_at = null;
        if (r.job.state === 'done') continue;
        if (r.job.state === 'printing') {
          // Stopped while sending: the paper may be out. The cashier decides.
          Object.assign(r.job, { state: 'failed', failure: 'error', message: 'printing was interrupted (the app stopped): check the paper, then print again if needed' });
          r.mayHavePrinted = true;
        }
        // Unfinished jobs from the last day that surely did not print go out after a restart;
        // older ones wait for a manual retry.
        if (!r.mayHavePrinted && Date.parse(r.job.created_at) > dayAgo) this.schedule(r, 500);
      }
    }
  }

  list(): PrintJob[] {
    return this.records.map((r) => ({ ...r.job })).reverse();
  }

  find(combineOutTradeNo: string, kind: PrintKind, reprint = false): PrintJob | undefined {
    return this.records.find((r) => r.job.combine_out_trade_no === combineOutTradeNo && r.job.kind === kind && r.job.reprint === reprint)?.job;
  }

  /** A refund slip already asked for (its next paper is a reprint). */
  findRefund(outRefundNo: string): PrintJob | undefined {
    return this.records.find((r) => r.job.kind === 'refund' && r.job.out_refund_no === outRefundNo)?.job;
  }

  /** Adds a job and resolves after its first attempt (done, or failed and scheduled for retry). */
  enqueue(kind: PrintKind, order: Order, merchantNames: Record<string, string>, reprint: boolean, outRefundNo?: string): Promise<PrintJob> {
    const job: PrintJob = {
      id: randomUUID(), kind, combine_out_trade_no: order.combine_out_trade_no, ...(outRefundNo ? { out_refund_no: outRefundNo } : {}), reprint, state: 'queued',
      attempts: 0, failure: null, message: null, created_at: new Date().toISOString(), retry_at: null,
    };
    const rec: JobRecord = { job, order, merchantNames };
    this.records.push(rec);
    this.trim();
    this.changed(rec);
    return this.run(rec, false);
  }

  /**
   * A shift report (kind `shift`, `combine_out_trade_no` = `shift-<id>`): same queue, same rules
   * (one at a time, no automatic second paper after an ambiguous failure, REPRINT when printed again).
   */
  enqueueShift(report: ShiftReport, reprint: boolean): Promise<PrintJob> {
    const job: PrintJob = {
      id: randomUUID(), kind: 'shift', combine_out_trade_no: `shift-${report.shift.id}`, reprint, state: 'queued',
      attempts: 0, failure: null, message: null, created_at: new Date().toISOString(), retry_at: null,
    };
    // A report job has no order (isJobRecord checks `shift` for this kind).
    const rec: JobRecord = { job, order: null as unknown as Order, shift: report, merchantNames: {} };
    this.records.push(rec);
    this.trim();
    this.changed(rec);
    return this.run(rec, false);
  }

  /** The cashier's "print again" of a failed job (after an ambiguous failure: marked REPRINT). */
  retry(id: string): Promise<PrintJob> {
    const rec = this.records.find((r) => r.job.id === id);
    if (!rec) return Promise.reject(new TerminalError('NOT_FOUND', `no print job ${id}`, { field: 'jobId' }));
    if (rec.job.state === 'done') return Promise.resolve({ ...rec.job });
    return this.run(rec, false);
  }

  private run(rec: JobRecord, automatic: boolean): Promise<PrintJob> {
    const t = this.timers.get(rec.job.id);
    if (t) { clearTimeout(t); this.timers.delete(rec.job.id); }
    rec.job.retry_at = null;
    // One job at a time: a printer takes jobs sequentially and slips must not interleave.
    const p = this.chain.then(() => this.attempt(rec, automatic)).catch((err: unknown) => {
      // A bug (building the receipt threw): the job shows it instead of a rejection nobody handles.
      Object.assign(rec.job, { state: 'failed', failure: 'error', message: `cannot print: ${(err as Error)?.message ?? String(err)}` });
      this.log(`print job ${rec.job.id} failed: ${(err as Error)?.stack ?? String(err)}`);
      this.changed(rec);
      return { ...rec.job };
    });
    this.chain = p;
    return p;
  }

  private async attempt(rec: JobRecord, automatic: boolean): Promise<PrintJob> {
    if (this.closed || rec.job.state === 'done') return { ...rec.job };
    if (automatic && rec.mayHavePrinted) return { ...rec.job };
    if (automatic && this.opts.wanted && !(await this.opts.wanted({ ...rec.job }))) {
      const note = 'not retried: the order is no longer waiting for payment (or its state is unknown)';
      if (!rec.job.message?.includes(note)) Object.assign(rec.job, { message: `${rec.job.message ?? 'not printed'}; ${note}` });
      this.changed(rec);
      return { ...rec.job };
    }
    const s = this.opts.settings();
    const reprint = rec.job.reprint || !!rec.mayHavePrinted;
    const doc = rec.shift ? buildShiftReport({ report: rec.shift, reprint, width: s.paper_width, language: s.language, storeName: s.store_name, storeAddress: s.store_address })
      : rec.job.kind === 'refund' ? buildRefundSlip({ order: rec.order, outRefundNo: rec.job.out_refund_no!, merchantNames: rec.merchantNames, reprint, width: s.paper_width,
        language: s.language, storeName: s.store_name, storeAddress: s.store_address })
      : buildReceipt({ kind: rec.job.kind as 'slip' | 'receipt', order: rec.order, merchantNames: rec.merchantNames, reprint, width: s.paper_width, language: s.language,
      storeName: s.store_name, storeAddress: s.store_address, cashierName: s.cashier_name,
    });
    rec.job.attempts++;
    if (s.printer === 'preview') {
      Object.assign(rec.job, { state: 'done', failure: null, message: null, preview: renderPreview(doc) });
      this.changed(rec);
      return { ...rec.job };
    }
    rec.job.state = 'printing';
    delete rec.job.preview;
    this.changed(rec);
    const waitForAck = this.opts.waitForAck ?? true;
    try {
      const bytes = renderEscPos(doc, { qrMode: s.qr_mode, statusRequest: waitForAck });
      await (this.opts.send ?? sendToPrinter)(s.printer, bytes, { timeoutMs: this.opts.timeoutMs ?? 5_000, waitForAck });
      Object.assign(rec.job, { state: 'done', failure: null, message: null });
    } catch (err) {
      const e = classifyPrinterError(err, s.printer.replace(/^tcp:\/\//, ''));
      Object.assign(rec.job, { state: 'failed', failure: e.failure, message: e.message });
      // Retry by itself only when no byte reached the printer (see the top of this file).
      if (e.mayHavePrinted) rec.mayHavePrinted = true;
      else {
        const base = this.opts.retryBaseMs ?? 2_000;
        this.schedule(rec, Math.min(this.opts.retryMaxMs ?? 60_000, base * 2 ** Math.min(10, rec.job.attempts - 1)));
      }
    }
    this.changed(rec);
    return { ...rec.job };
  }

  private log(message: string): void {
    (this.opts.log ?? ((m: string) => console.error(`[print] ${m}`)))(message);
  }

  private schedule(rec: JobRecord, ms: number): void {
    if (this.closed) return;
    const old = this.timers.get(rec.job.id);
    if (old) clearTimeout(old);
    rec.job.retry_at = new Date(Date.now() + ms).toISOString();
    const t = setTimeout(() => { this.timers.delete(rec.job.id); void this.run(rec, true); }, ms);
    t.unref?.();
    this.timers.set(rec.job.id, t);
  }

  private trim(): void {
    const keep = this.opts.keep ?? 300;
    while (this.records.length > keep) {
      const i = this.records.findIndex((r) => r.job.state === 'done');
      this.records.splice(i < 0 ? 0 : i, 1);
    }
  }

  private changed(rec: JobRecord): void {
    // Previews are for the screen of this session; the file keeps what a restart needs to retry.
    if (this.opts.path) {
      try {
        writeJsonAtomic(this.opts.path, this.records.map((r) => ({ ...r, job: { ...r.job, preview: undefined } })));
      } catch (err) {
        // Disk full or read-only: printing goes on from memory; a restart forgets these jobs.
        this.log(`cannot save the print jobs to ${this.opts.path}: ${(err as Error).message}`);
      }
    }
    try {
      this.emit('job', { ...rec.job });
    } catch (err) {
      this.log(`a print job listener failed: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const r of this.records) r.job.retry_at = null;
    await this.chain;
  }
}
