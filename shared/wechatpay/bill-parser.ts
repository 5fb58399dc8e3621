/**
 * Streaming trade bill parser (reference §6.3). Bytes go in as they arrive (already gunzipped);
 * typed records come out; memory holds one chunk and one partial line, never the file.
 * Columns are mapped by their header titles, so the three layouts (ALL, SUCCESS, REFUND) and
 * columns WeChat Pay may add later parse alike; the columns every layout has are required.
 */
import { BILL_COLUMNS, BILL_FIELD_PREFIX, BILL_SUMMARY_COLUMNS, type ColumnKind, type SummarySpec } from './bill-format';
import { BillError } from './errors';
import { yuanToFen, yuanToMilliFen } from './money';
import type { BillType, TradeBillRecord, TradeBillSummary } from './models';

const REQUIRED_TITLES = BILL_COLUMNS.SUCCESS.map((c) => c.title);
const SPEC_BY_TITLE = new Map<string, { field: keyof TradeBillRecord; kind: ColumnKind }>();
for (const c of BILL_COLUMNS.REFUND) SPEC_BY_TITLE.set(c.title, { field: c.field, kind: c.kind });
const SUMMARY_BY_TITLE = new Map<string, SummarySpec>();
for (const c of BILL_SUMMARY_COLUMNS.ALL) SUMMARY_BY_TITLE.set(c.title, c);
const SUMMARY_FIRST_TITLE = BILL_SUMMARY_COLUMNS.ALL[0]!.title;

type Field = keyof TradeBillRecord;
type State = 'header' | 'detail' | 'summary-row' | 'done';

/** A text column, '' when the layout has none (a module function: no closure per row). */
function txt(v: string[], i: number): string {
  return i < 0 ? '' : v[i]!;
}

function malformed(line: number, message: string): BillError {
  return new BillError('BILL_MALFORMED', `bill line ${line}: ${message}`);
}

/**
 * Push parser: `push(bytes)` returns the records those bytes completed; `end()` returns the
 * summary and fails if the file stopped short of it.
 */
export class TradeBillParser {
  private state: State = 'header';
  private line = 0;
  private tail: Buffer | null = null;
  private width = 0;
  /** Column index of each field, -1 when the layout has no such column. */
  private idx = {} as Record<Field, number>;
  private kinds: ColumnKind[] = [];
  private titles: string[] = [];
  private summaryTitles: string[] = [];
  private summaryValue: TradeBillSummary | null = null;
  private records = 0;
  billType: BillType | 'OTHER' = 'OTHER';

  /** Number of detail rows parsed so far. */
  get count(): number {
    return this.records;
  }

  push(chunk: Buffer | string, out: TradeBillRecord[] = []): TradeBillRecord[] {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const last = buf.lastIndexOf(10);
    if (last < 0) {
      this.tail = this.tail ? Buffer.concat([this.tail, buf]) : buf;
      return out;
    }
    if (this.tail) {
      buf = Buffer.concat([this.tail, buf]);
      this.tail = null;
      const l = buf.lastIndexOf(10);
      this.keepTail(buf, l);
      this.lines(buf.toString('utf8', 0, l), out);
    } else {
      this.keepTail(buf, last);
      // Cutting at a newline never splits a UTF-8 sequence (0x0A is never a continuation byte).
      this.lines(buf.toString('utf8', 0, last), out);
    }
    return out;
  }

  private keepTail(buf: Buffer, lastNewline: number): void {
    // Copy: the caller may reuse its chunk buffer.
    this.tail = lastNewline + 1 < buf.length ? Buffer.from(buf.subarray(lastNewline + 1)) : null;
  }

  private lines(text: string, out: TradeBillRecord[]): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      const end = nl < 0 ? text.length : nl;
      let e = end;
      if (e > start && text.charCodeAt(e - 1) === 13) e--;
      this.line++;
      this.handle(text.slice(start, e), out);
      if (nl < 0) return;
      start = nl + 1;
    }
  }

  /** Finishes the file: returns the summary, or fails naming what is missing. */
  end(out: TradeBillRecord[] = []): TradeBillSummary {
    if (this.tail) {
      const t = this.tail.toString('utf8');
      this.tail = null;
      this.line++;
      this.handle(t.endsWith('\r') ? t.slice(0, -1) : t, out);
    }
    if (this.state === 'header') throw malformed(this.line, 'bill is empty (no header line)');
    if (this.state === 'detail') throw malformed(this.line, 'bill ends without its summary');
    if (this.state === 'summary-row') throw malformed(this.line, 'bill ends after the summary header without the summary row');
    return this.summaryValue!;
  }

  private handle(raw: string, out: TradeBillRecord[]): void {
    let line = raw;
    if (this.line === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    if (line.length === 0 || line.trim().length === 0) return; // blank lines carry nothing
    switch (this.state) {
      case 'detail':
        if (line.charCodeAt(0) === 96 /* ` */) {
          out.push(this.row(line));
          return;
        }
        this.summaryHeader(line);
        return;
      case 'header':
        this.header(line);
        return;
      case 'summary-row':
        this.summaryRow(line);
        return;
      case 'done':
        throw malformed(this.line, 'unexpected content after the summary row');
    }
  }

  private header(line: string): void {
    const titles = line.split(',').map((t) => t.trim());
    const missing = REQUIRED_TITLES.filter((t) => !titles.includes(t));
    if (missing.length) throw malformed(this.line, `not a trade bill header (missing column ${missing.join(', ')})`);
    const seen = new Set<string>();
    for (const t of titles) {
      if (seen.has(t)) throw malformed(this.line, `column ${t} appears twice`);
      seen.add(t);
    }
    this.titles = titles;
    this.width = titles.length;
    this.kinds = titles.map((t) => SPEC_BY_TITLE.get(t)?.kind ?? 'text');
    for (const c of BILL_COLUMNS.REFUND) this.idx[c.field] = titles.indexOf(c.title);
    for (const type of ['ALL', 'SUCCESS', 'REFUND'] as const) {
      const cols = BILL_COLUMNS[type];
      if (cols.length === titles.length && cols.every((c, i) => c.title === titles[i])) this.billType = type;
    }
    this.state = 'detail';
  }

  private cells(line: string, width: number, what: string): string[] {
    if (line.charCodeAt(0) !== 96) throw malformed(this.line, `${what} must start with a backtick`);
    // Values are split on ",`": commas inside values survive.
    const v = line.slice(1).split(',' + BILL_FIELD_PREFIX);
    if (v.length !== width) throw malformed(this.line, `${what} has ${v.length} columns, the header has ${width}`);
    return v;
  }

  private fen(v: string[], i: number): number {
    if (i < 0) return 0;
    try {
      return yuanToFen(v[i]!);
    } catch (err) {
      throw malformed(this.line, `column ${this.titles[i]}: ${(err as Error).message}`);
    }
  }

  private milli(v: string[], i: number): number {
    if (i < 0) return 0;
    try {
      return yuanToMilliFen(v[i]!);
    } catch (err) {
      throw malformed(this.line, `column ${this.titles[i]}: ${(err as Error).message}`);
    }
  }

  private row(line: string): TradeBillRecord {
    const v = this.cells(line, this.width, 'detail row');
    const x = this.idx;
    // One object literal with a fixed field order keeps every record the same hidden class.
    const r: TradeBillRecord = {
      trade_time: v[x.trade_time]!,
      appid: txt(v, x.appid),
      mchid: v[x.mchid]!,
      sub_mchid: txt(v, x.sub_mchid),
      device_info: txt(v, x.device_info),
      transaction_id: v[x.transaction_id]!,
      out_trade_no: v[x.out_trade_no]!,
      openid: txt(v, x.openid),
      trade_type: txt(v, x.trade_type),
      trade_state: v[x.trade_state]!,
      bank_type: txt(v, x.bank_type),
      currency: txt(v, x.currency),
      settlement_total_fee: this.fen(v, x.settlement_total_fee),
      coupon_fee: this.fen(v, x.coupon_fee),
      refund_id: txt(v, x.refund_id),
      out_refund_no: txt(v, x.out_refund_no),
      refund_fee: this.fen(v, x.refund_fee),
      coupon_refund_fee: this.fen(v, x.coupon_refund_fee),
      refund_type: txt(v, x.refund_type),
      refund_status: txt(v, x.refund_status),
      description: txt(v, x.description),
      attach: txt(v, x.attach),
      fee_milli_fen: this.milli(v, x.fee_milli_fen),
      rate: txt(v, x.rate),
      total_fee: this.fen(v, x.total_fee),
      applied_refund_fee: this.fen(v, x.applied_refund_fee),
      rate_note: txt(v, x.rate_note),
    };
    if (x.refund_apply_time >= 0) r.refund_apply_time = v[x.refund_apply_time]!;
    if (x.refund_success_time >= 0) r.refund_success_time = v[x.refund_success_time]!;
    this.records++;
    return r;
  }

  private summaryHeader(line: string): void {
    const titles = line.split(',').map((t) => t.trim());
    if (titles[0] !== SUMMARY_FIRST_TITLE) {
      throw malformed(this.line, 'expected a detail row (starting with a backtick) or the summary header');
    }
    for (const t of titles) if (!SUMMARY_BY_TITLE.has(t)) throw malformed(this.line, `unknown summary column ${t}`);
    this.summaryTitles = titles;
    this.state = 'summary-row';
  }

  private summaryRow(line: string): void {
    const v = this.cells(line, this.summaryTitles.length, 'summary row');
    const s: TradeBillSummary = { total_count: 0, settlement_total_fee: 0, refund_fee: 0, coupon_refund_fee: 0, fee_milli_fen: 0, total_fee: 0, applied_refund_fee: 0 };
    this.summaryTitles.forEach((title, i) => {
      const spec = SUMMARY_BY_TITLE.get(title)!;
      const text = v[i]!;
      if (spec.kind === 'count') {
        if (!/^\d{1,15}$/.test(text)) throw malformed(this.line, `summary ${title} is not a count: ${JSON.stringify(text)}`);
        s.total_count = Number(text);
      } else {
        try {
          s[spec.field] = spec.kind === 'fen' ? yuanToFen(text) : yuanToMilliFen(text);
        } catch (err) {
          throw malformed(this.line, `summary ${title}: ${(err as Error).message}`);
        }
      }
    });
    this.summaryValue = s;
    this.state = 'done';
  }
}

/** Parses a whole bill held in memory (small bills, tests). */
export function parseTradeBillText(text: string | Buffer): { records: TradeBillRecord[]; summary: TradeBillSummary; billType: BillType | 'OTHER' } {
  const p = new TradeBillParser();
  const records = p.push(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  const summary = p.end(records);
  return { records, summary, billType: p.billType };
}

/** Records of a bill as they stream in, and its summary once the stream has ended cleanly. */
export interface TradeBillStream extends AsyncIterable<TradeBillRecord> {
  /** Resolves after the last record (reading the rest of the stream if nobody iterates it). */
  summary(): Promise<TradeBillSummary>;
}

/**
 * Wraps an async source of decompressed chunks. `finish` runs after the last chunk, before the
 * summary is accepted (the hash check lives there), so a consumer that iterates to the end
 * without an error has a bill that is whole and authentic.
 */
export function streamTradeBill(source: AsyncIterable<Buffer | string>, hooks: { onChunk?(b: Buffer): void; finish?(): void } = {}): TradeBillStream {
  let started = false;
  let settled = false;
  let resolve!: (s: TradeBillSummary) => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<TradeBillSummary>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => {}); // observed through summary() or the iterator; never unhandled
  async function* run(): AsyncGenerator<TradeBillRecord> {
    const parser = new TradeBillParser();
    try {
      const batch: TradeBillRecord[] = [];
      for await (const c of source) {
        const b = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
        hooks.onChunk?.(b);
        parser.push(b, batch);
        for (let i = 0; i < batch.length; i++) yield batch[i]!;
        batch.length = 0;
      }
      // The hash check comes first: a truncated or altered file is reported as such.
      hooks.finish?.();
      const summary = parser.end(batch);
      for (const r of batch) yield r;
      settled = true;
      resolve(summary);
    } catch (err) {
      settled = true;
      reject(err);
      throw err;
    } finally {
      if (!settled) reject(new BillError('BILL_MALFORMED', 'bill iteration stopped before the end: no summary'));
    }
  }
  const iterable: TradeBillStream = {
    [Symbol.asyncIterator]() {
      if (started) throw new Error('a trade bill stream can be iterated once');
      started = true;
      return run();
    },
    async summary() {
      if (!started) for await (const _ of iterable) void _;
      return done;
    },
  };
  return iterable;
}
