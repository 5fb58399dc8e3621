/**
 * Streaming trade bill parser (reference §6.3). Bytes go in as they arrive (already gunzipped);
 * typed records come out; memory holds one chunk and one partial line (at most
 * MAX_LINE_BYTES), never the file.
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

/**
 * Longest line accepted. A detail row is ~300–700 bytes (the longest columns are a 127-character
 * description and a 128-byte attach); a body without line breaks fails here instead of growing
 * the partial-line buffer without bound.
 */
export const MAX_LINE_BYTES = 64 * 1024;
/** Bytes read into one latin1 string at most (about; see push): below V8's large-object size. */
const TEXT_PIECE = 64 * 1024;
type State = 'header' | 'detail' | 'summary-row' | 'done';


/**
 * Fast path for `[-]digits[.digits]` with at most `scale` decimals, read in place from
 * `text[a..b)` by character codes: no substring, no regex. Returns null for anything else
 * (the careful parser in money.ts then decides and explains); the value is exact because it
 * is accumulated as an integer and refused (null) beyond 2^53.
 */
function scaledAt(text: string, a: number, b: number, scale: number): number | null {
  let i = a;
  let neg = false;
  if (i < b && text.charCodeAt(i) === 45 /* - */) {
    neg = true;
    i++;
  }
  const intStart = i;
  let n = 0;
  let c = 0;
  while (i < b && (c = text.charCodeAt(i) - 48) >= 0 && c <= 9) {
    n = n * 10 + c;
    i++;
  }
  if (i === intStart) return null;
  let decimals = 0;
  if (i < b) {
    if (text.charCodeAt(i) !== 46 /* . */ || i === b - 1) return null;
    i++;
    while (i < b) {
      c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9 || decimals === scale) return null;
      n = n * 10 + c;
      decimals++;
      i++;
    }
  }
  for (; decimals < scale; decimals++) n *= 10;
  if (n > Number.MAX_SAFE_INTEGER) return null;
  return neg && n !== 0 ? -n : n;
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
  /** Field offsets of the row being parsed (see split). */
  private starts = new Int32Array(0);
  private ends = new Int32Array(0);
  /** The bytes the current latin1 text was read from, and where it starts in them. */
  private src: Buffer = Buffer.alloc(0);
  private base = 0;
  /** Per field of the row being parsed: non-zero when it holds a non-ASCII byte (see split). */
  private high = new Uint8Array(0);
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
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    if (this.tail) {
      // Only the line the tail began is joined: the rest of the chunk is read where it lies.
      const nl = buf.indexOf(10);
      if (nl < 0) {
        this.keepTail(buf, 0);
        return out;
      }
      const joined = Buffer.concat([this.tail, buf.subarray(0, nl)]);
      this.tail = null;
      this.checkLength(joined.length);
      this.process(joined, 0, joined.length, out);
      start = nl + 1;
    }
    const last = buf.lastIndexOf(10);
    if (last < start) {
      this.keepTail(buf, start);
      return out;
    }
    // Cutting at a newline never splits a UTF-8 sequence (0x0A is never a continuation byte).
    // Large chunks are read in pieces of about TEXT_PIECE bytes cut at line breaks: each piece's
    // text is then a young-generation string, freed cheaply, where a larger one would go to
    // V8's large-object space, which only full collections free (a bigger heap, more RSS).
    let s = start;
    while (last - s > TEXT_PIECE) {
      const cut = buf.lastIndexOf(10, s + TEXT_PIECE);
      if (cut < s) break; // a line longer than a piece: read the rest in one go
      this.process(buf, s, cut, out);
      s = cut + 1;
    }
    this.process(buf, s, last, out);
    this.keepTail(buf, last + 1);
    return out;
  }

  /**
   * Lines of `buf[s..e)`. The bytes are read as latin1 (one character per byte: 15× cheaper than
   * decoding UTF-8, and character offsets are byte offsets); numbers are parsed from those
   * characters, and a text field is decoded as UTF-8 from the bytes only when it holds a
   * non-ASCII byte (descriptions, notes). Header and summary lines are decoded as UTF-8.
   */
  private process(buf: Buffer, s: number, e: number, out: TradeBillRecord[]): void {
    this.src = buf;
    this.base = s;
    this.lines(buf.toString('latin1', s, e), out);
  }

  /** `text[a..b)` of the current latin1 text, decoded as the UTF-8 it is. */
  private utf8(a: number, b: number): string {
    return this.src.toString('utf8', this.base + a, this.base + b);
  }

  /** Keeps `buf[from..]` as the start of the next line (bounded: MAX_LINE_BYTES). */
  private keepTail(buf: Buffer, from: number): void {
    if (from >= buf.length) return;
    const have = this.tail ? this.tail.length : 0;
    this.checkLength(have + buf.length - from);
    // Copy: the caller may reuse its chunk buffer.
    const part = Buffer.from(buf.subarray(from));
    this.tail = this.tail ? Buffer.concat([this.tail, part]) : part;
  }

  private checkLength(bytes: number): void {
    if (bytes > MAX_LINE_BYTES) throw malformed(this.line + 1, `line longer than ${MAX_LINE_BYTES} bytes without a line break: not a trade bill`);
  }

  private lines(text: string, out: TradeBillRecord[]): void {
    let start = 0;
    const len = text.length;
    for (;;) {
      this.line++;
      // Hot path: a detail row is split and parsed in place in one pass over its characters,
      // without a string for the line or its numbers.
      if (this.state === 'detail' && start < len && text.charCodeAt(start) === 96) {
        const nl = this.split(text, start, len);
        out.push(this.rowAt(text));
        if (nl >= len) return;
        start = nl + 1;
        continue;
      }
      const nl = text.indexOf('\n', start);
      const end = nl < 0 ? len : nl;
      let e = end;
      if (e > start && text.charCodeAt(e - 1) === 13) e--;
      this.handle(this.utf8(start, e), out);
      if (nl < 0) return;
      start = nl + 1;
    }
  }

  /** Finishes the file: returns the summary, or fails naming what is missing. */
  end(out: TradeBillRecord[] = []): TradeBillSummary {
    if (this.tail) {
      const t = this.tail;
      this.tail = null;
      this.process(t, 0, t.length, out);
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
        // Detail rows (starting with a backtick) never get here: lines() parses them in place.
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
    this.starts = new Int32Array(titles.length);
    this.ends = new Int32Array(titles.length);
    this.high = new Uint8Array(titles.length);
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

  /**
   * Splits the detail row that starts at `text[s]` (a backtick) and returns where it ends (its
   * line break, or `len`). Field j spans starts[j] .. ends[j] (the values after the leading
   * backtick, split on ",`" so commas inside values survive; a CR before the line break is not
   * part of the row), and high[j] says whether it holds a non-ASCII byte (then it is decoded as
   * UTF-8). One pass over the characters finds the line end, the separators and the non-ASCII
   * fields together: far cheaper than a search call per field. Reused arrays: no allocation.
   */
  private split(text: string, s: number, len: number): number {
    const width = this.width;
    const starts = this.starts;
    const ends = this.ends;
    const high = this.high;
    let n = 0;
    let bits = 0;
    let prev = 96;
    // The bytes the text was read from (one character per byte): typed-array loads are the
    // cheapest way to visit every character.
    const src = this.src;
    const o = this.base;
    let i = s + 1;
    starts[0] = i;
    for (; i < len; i++) {
      const c = src[o + i]!;
      if (c === 10) break;
      if (c === 96 && prev === 44) {
        if (n + 1 >= width) throw malformed(this.line, `detail row has more than ${width} columns, the header has ${width}`);
        ends[n] = i - 1;
        high[n] = bits & 0x80;
        bits = 0;
        n++;
        starts[n] = i + 1;
        // A backtick that opens a field never closes a separator: ",`,`" is two separators.
        prev = 0;
        continue;
      }
      bits |= c;
      prev = c;
    }
    const nl = i;
    if (i > starts[n]! && src[o + i - 1] === 13) i--;
    ends[n] = i;
    high[n] = bits & 0x80;
    if (n + 1 !== width) throw malformed(this.line, `detail row has ${n + 1} columns, the header has ${width}`);
    return nl;
  }

  private text(text: string, i: number): string {
    if (i < 0) return '';
    // ASCII: the latin1 characters are the text.
    return this.high[i] === 0 ? text.slice(this.starts[i]!, this.ends[i]!) : this.utf8(this.starts[i]!, this.ends[i]!);
  }

  /** Yuan → fen (scale 2) or milli-fen (scale 5) straight from the row text. */
  private amount(text: string, i: number, scale: number): number {
    if (i < 0) return 0;
    const a = this.starts[i]!;
    const b = this.ends[i]!;
    const v = scaledAt(text, a, b, scale);
    if (v !== null) return v;
    // Anything unusual (spaces, extra zeros, errors) takes the careful path, which names the fault.
    try {
      return scale === 2 ? yuanToFen(this.utf8(a, b)) : yuanToMilliFen(this.utf8(a, b));
    } catch (err) {
      throw malformed(this.line, `column ${this.titles[i]}: ${(err as Error).message}`);
    }
  }

  private rowAt(text: string): TradeBillRecord {
    const x = this.idx;
    // One object literal with a fixed field order keeps every record the same hidden class.
    const r: TradeBillRecord = {
      trade_time: this.text(text, x.trade_time),
      appid: this.text(text, x.appid),
      mchid: this.text(text, x.mchid),
      sub_mchid: this.text(text, x.sub_mchid),
      device_info: this.text(text, x.device_info),
      transaction_id: this.text(text, x.transaction_id),
      out_trade_no: this.text(text, x.out_trade_no),
      openid: this.text(text, x.openid),
      trade_type: this.text(text, x.trade_type),
      trade_state: this.text(text, x.trade_state),
      bank_type: this.text(text, x.bank_type),
      currency: this.text(text, x.currency),
      settlement_total_fee: this.amount(text, x.settlement_total_fee, 2),
      coupon_fee: this.amount(text, x.coupon_fee, 2),
      refund_id: this.text(text, x.refund_id),
      out_refund_no: this.text(text, x.out_refund_no),
      refund_fee: this.amount(text, x.refund_fee, 2),
      coupon_refund_fee: this.amount(text, x.coupon_refund_fee, 2),
      refund_type: this.text(text, x.refund_type),
      refund_status: this.text(text, x.refund_status),
      description: this.text(text, x.description),
      attach: this.text(text, x.attach),
      fee_milli_fen: this.amount(text, x.fee_milli_fen, 5),
      rate: this.text(text, x.rate),
      total_fee: this.amount(text, x.total_fee, 2),
      applied_refund_fee: this.amount(text, x.applied_refund_fee, 2),
      rate_note: this.text(text, x.rate_note),
    };
    if (x.refund_apply_time >= 0) r.refund_apply_time = this.text(text, x.refund_apply_time);
    if (x.refund_success_time >= 0) r.refund_success_time = this.text(text, x.refund_success_time);
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
  /**
   * The records in arrays, one per decompressed chunk (the same records as iterating the stream,
   * without one promise per record: what a consumer of millions of rows should use). The array
   * is reused: read it before asking for the next one. Either this or the stream, once.
   */
  batches(): AsyncIterable<readonly TradeBillRecord[]>;
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
  async function* runBatches(): AsyncGenerator<readonly TradeBillRecord[]> {
    const parser = new TradeBillParser();
    try {
      const batch: TradeBillRecord[] = [];
      for await (const c of source) {
        const b = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
        hooks.onChunk?.(b);
        parser.push(b, batch);
        if (batch.length) yield batch;
        batch.length = 0;
      }
      // The hash check comes first: a truncated or altered file is reported as such.
      hooks.finish?.();
      const summary = parser.end(batch);
      if (batch.length) yield batch;
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
  async function* run(): AsyncGenerator<TradeBillRecord> {
    for await (const batch of runBatches()) for (let i = 0; i < batch.length; i++) yield batch[i]!;
  }
  const start = () => {
    if (started) throw new Error('a trade bill stream can be iterated once');
    started = true;
  };
  const iterable: TradeBillStream = {
    [Symbol.asyncIterator]() {
      start();
      return run();
    },
    batches() {
      start();
      return { [Symbol.asyncIterator]: () => runBatches() };
    },
    async summary() {
      if (!started) for await (const _ of iterable) void _;
      return done;
    },
  };
  return iterable;
}
