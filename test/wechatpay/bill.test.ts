import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { fenToYuan, milliFenToYuan, yuanToFen, yuanToMilliFen } from '../../shared/wechatpay/money';
import { formatTradeBill, formatTradeBillRow, paymentBillRecord, summarizeTradeBill } from '../../shared/wechatpay/bill-writer';
import { MAX_LINE_BYTES, TradeBillParser, parseTradeBillText } from '../../shared/wechatpay/bill-parser';
import { verifiedBillStream } from '../../shared/wechatpay/bill';
import { BillError } from '../../shared/wechatpay/errors';
import type { BillType, TradeBillRecord } from '../../shared/wechatpay/models';

/** Oracle with BigInt: independent of the string arithmetic under test. */
function oracleYuan(fen: bigint): string {
  const neg = fen < 0n;
  const a = neg ? -fen : fen;
  return `${neg ? '-' : ''}${a / 100n}.${String(a % 100n).padStart(2, '0')}`;
}

describe('yuan ↔ fen (string arithmetic)', () => {
  it('round-trips every safe integer amount and matches a BigInt oracle', () => {
    fc.assert(fc.property(fc.maxSafeInteger().filter((n) => n >= -Number.MAX_SAFE_INTEGER), (fen) => {
      const y = fenToYuan(fen);
      expect(y).toBe(oracleYuan(BigInt(fen)));
      expect(yuanToFen(y)).toBe(fen);
    }), { numRuns: 2000 });
  });

  it('parses yuan written with 0–2 decimals, leading zeros and trailing zero decimals', () => {
    fc.assert(fc.property(fc.nat({ max: 10_000_000 }), fc.nat({ max: 99 }), fc.nat({ max: 3 }), fc.boolean(), (yuan, cents, zeros, neg) => {
      const fen = yuan * 100 + cents;
      const text = `${neg ? '-' : ''}${'0'.repeat(zeros)}${yuan}.${String(cents).padStart(2, '0')}${'0'.repeat(zeros)}`;
      expect(yuanToFen(text)).toBe(neg && fen !== 0 ? -fen : fen);
    }), { numRuns: 1000 });
    expect(yuanToFen('12.5')).toBe(1250);
    expect(yuanToFen('7')).toBe(700);
    expect(yuanToFen('-0.00')).toBe(0);
    expect(yuanToFen(' 1.00 ')).toBe(100);
  });

  it('rejects junk and fractions of a fen with BILL_MALFORMED', () => {
    for (const bad of ['', '-', '.5', '1.', '1.2.3', '1,00', 'abc', '1e3', '0x10', '1.001', '+1.00', '12.50元', '99999999999999999.00']) {
      expect(() => yuanToFen(bad), bad).toThrowError(BillError);
    }
  });

  it('fees keep 5 decimals exactly (thousandths of a fen)', () => {
    fc.assert(fc.property(fc.integer({ min: -1e12, max: 1e12 }), (m) => {
      expect(yuanToMilliFen(milliFenToYuan(m))).toBe(m);
    }), { numRuns: 1000 });
    expect(yuanToMilliFen('0.23000')).toBe(23000);
    expect(yuanToMilliFen('-0.08000')).toBe(-8000);
    expect(() => yuanToMilliFen('0.000001')).toThrowError(BillError);
  });
});

// Text that the format can carry: no backtick, no line break (the writer replaces those).
const cellText = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '9', ' ', ',', '-', '_', '%', '门', '店', '套', '餐', '。', 'é'), maxLength: 20 });
const ident = fc.string({ unit: fc.constantFrom('0', '1', '7', 'A', 'b', '_', '-'), minLength: 1, maxLength: 32 });
const money = fc.integer({ min: 0, max: 1_000_000_000 });

const recordArb: fc.Arbitrary<TradeBillRecord> = fc.record({
  trade_time: fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 19).replace('T', ' ')),
  appid: ident, mchid: ident, sub_mchid: fc.constant('0'), device_info: fc.constantFrom('', 'POS0001'),
  transaction_id: ident, out_trade_no: ident, openid: ident, trade_type: fc.constant('NATIVE'),
  trade_state: fc.constantFrom('SUCCESS', 'REFUND'), bank_type: fc.constantFrom('OTHERS', 'CMB_DEBIT'), currency: fc.constant('CNY'),
  settlement_total_fee: money, coupon_fee: money, refund_id: ident, out_refund_no: ident, refund_fee: money, coupon_refund_fee: money,
  refund_type: fc.constantFrom('', 'ORIGINAL'), refund_status: fc.constantFrom('', 'SUCCESS'), description: cellText, attach: cellText,
  fee_milli_fen: fc.integer({ min: -1e9, max: 1e9 }), rate: fc.constantFrom('0.60%', '0.38%'), total_fee: money, applied_refund_fee: money,
  rate_note: cellText,
});

/** What survives a bill type's columns. */
function projected(r: TradeBillRecord, type: BillType): TradeBillRecord {
  if (type === 'SUCCESS') return { ...r, refund_id: '', out_refund_no: '', refund_fee: 0, coupon_refund_fee: 0, refund_type: '', refund_status: '', applied_refund_fee: 0 };
  if (type === 'REFUND') return { ...r, refund_apply_time: r.refund_apply_time ?? '', refund_success_time: r.refund_success_time ?? '' };
  return r;
}

/** Feeds bytes in pieces cut at arbitrary points (also inside multi-byte characters). */
function parseInPieces(bytes: Buffer, cuts: number[]) {
  const p = new TradeBillParser();
  const out: TradeBillRecord[] = [];
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const c of points) {
    p.push(bytes.subarray(prev, c), out);
    prev = c;
  }
  p.push(bytes.subarray(prev), out);
  const summary = p.end(out);
  return { records: out, summary, type: p.billType };
}

describe('trade bill writer ↔ parser', () => {
  it('property: any rows, any layout, CRLF or LF, BOM or not, any chunking → the same records and summary', () => {
    fc.assert(fc.property(
      fc.array(recordArb, { maxLength: 15 }), fc.constantFrom<BillType>('ALL', 'SUCCESS', 'REFUND'), fc.constantFrom<'\r\n' | '\n'>('\r\n', '\n'), fc.boolean(),
      fc.array(fc.nat(), { maxLength: 12 }),
      (rows, type, eol, bom, cuts) => {
        const text = formatTradeBill(rows, { billType: type, eol, bom });
        const got = parseInPieces(Buffer.from(text, 'utf8'), cuts);
        expect(got.type).toBe(type);
        expect(got.records).toEqual(rows.map((r) => projected(r, type)));
        const s = summarizeTradeBill(rows);
        if (type === 'SUCCESS') expect(got.summary).toEqual({ ...s, refund_fee: 0, coupon_refund_fee: 0, applied_refund_fee: 0 });
        else expect(got.summary).toEqual(s);
      },
    ), { numRuns: 300 });
  });

  it('parses the reference sample exactly', () => {
    const sample = [
      '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注',
      '`2025-03-14 12:03:41,`wx0a1b2c3d4e5f6a7b,`1900000109,`0,`,`4200002601202503141234567890,`S20250314120301A,`oAbCd1234EfGh5678IjKl9012MnOp,`NATIVE,`SUCCESS,`OTHERS,`CNY,`38.00,`0.00,`0,`0,`0.00,`0.00,`,`,`门店A-午餐套餐,`C20250314120301,`0.23000,`0.60%,`38.00,`0.00,`',
      '`2025-03-14 12:03:41,`wx0a1b2c3d4e5f6a7b,`1900000109,`0,`,`4200002601202503149876543210,`S20250314120301B,`oAbCd1234EfGh5678IjKl9012MnOp,`NATIVE,`SUCCESS,`CMB_DEBIT,`CNY,`12.50,`0.00,`0,`0,`0.00,`0.00,`,`,`门店A-饮品,`C20250314120301,`0.08000,`0.60%,`12.50,`0.00,`',
      '`2025-03-14 15:20:07,`wx0a1b2c3d4e5f6a7b,`1900000109,`0,`,`4200002601202503149876543210,`S20250314120301B,`oAbCd1234EfGh5678IjKl9012MnOp,`NATIVE,`REFUND,`CMB_DEBIT,`CNY,`0.00,`0.00,`50300001232025031400000000001,`R20250314152007,`12.50,`0.00,`ORIGINAL,`SUCCESS,`门店A-饮品,`C20250314120301,`-0.08000,`0.60%,`0.00,`12.50,`',
      '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额',
      '`3,`50.50,`12.50,`0.00,`0.23000,`50.50,`12.50',
    ].join('\r\n') + '\r\n';
    const { records, summary, billType } = parseTradeBillText('\uFEFF' + sample);
    expect(billType).toBe('ALL');
    expect(records).toHaveLength(3);
    expect(records[0]).toMatchObject({ mchid: '1900000109', out_trade_no: 'S20250314120301A', total_fee: 3800, settlement_total_fee: 3800, fee_milli_fen: 23000, description: '门店A-午餐套餐', attach: 'C20250314120301', trade_state: 'SUCCESS', transaction_id: '4200002601202503141234567890' });
    expect(records[2]).toMatchObject({ trade_state: 'REFUND', refund_fee: 1250, applied_refund_fee: 1250, fee_milli_fen: -8000, out_refund_no: 'R20250314152007' });
    expect(summary).toEqual({ total_count: 3, settlement_total_fee: 5050, refund_fee: 1250, coupon_refund_fee: 0, fee_milli_fen: 23000, total_fee: 5050, applied_refund_fee: 1250 });
    // The writer reproduces the sample from the parsed rows.
    expect(formatTradeBill(records, { summary })).toBe(sample);
  });

  it('names the line and the problem for malformed files', () => {
    const good = formatTradeBill([paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: '42', out_trade_no: 'S1', total_fee: 100 })], { eol: '\n' });
    const lines = good.split('\n');
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['交易时间,商户号\n', /line 1: not a trade bill header/],
      [lines.slice(0, 2).join('\n') + '\n', /without its summary/],
      [lines.slice(0, 3).join('\n') + '\n', /without the summary row/],
      [[lines[0], lines[1]!.replace('`1.00', '`1.x0'), ...lines.slice(2)].join('\n'), /line 2: column 应结订单金额/],
      [[lines[0], lines[1]!.slice(0, lines[1]!.lastIndexOf(',`')), ...lines.slice(2)].join('\n'), /line 2: detail row has 26 columns, the header has 27/],
      [[lines[0], 'oops', ...lines.slice(2)].join('\n'), /line 2: expected a detail row/],
      [good + 'trailing junk\n', /after the summary row/],
    ];
    for (const [text, re] of cases) {
      const err = (() => { try { parseTradeBillText(text); } catch (e) { return e as BillError; } })();
      expect(err, text).toBeInstanceOf(BillError);
      expect(err!.code).toBe('BILL_MALFORMED');
      expect(err!.message).toMatch(re);
    }
  });

  it('free text with backticks or line breaks is written safely; identifiers with them are refused', () => {
    const r = paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: '42', out_trade_no: 'S1', total_fee: 100, description: 'a`b\nc,`d' });
    const { records } = parseTradeBillText(formatTradeBill([r]));
    expect(records[0]!.description).toBe('a b c, d');
    expect(() => formatTradeBillRow({ ...r, out_trade_no: 'S`1' })).toThrowError(/out_trade_no/);
  });

  it('values that are empty, end with a comma or are non-ASCII in the last column split exactly, CRLF or LF', () => {
    // The row splitter looks for ",`" in one pass over the bytes: ",`,`" is two separators around
    // an empty value, a comma ending a value stays in it, and the CR before LF is not part of the last value.
    const base = paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: '42', out_trade_no: 'S1', total_fee: 100 });
    const rows: TradeBillRecord[] = [
      { ...base, device_info: '', description: 'x,', attach: ',', rate_note: '备注,' },
      { ...base, out_trade_no: 'S2', description: ',,', attach: '', rate_note: '' },
      { ...base, out_trade_no: 'S3', description: '午餐', attach: 'é', rate_note: ',é' },
    ];
    for (const eol of ['\r\n', '\n'] as const) {
      const bytes = Buffer.from(formatTradeBill(rows, { billType: 'ALL', eol }), 'utf8');
      for (const size of [1, 3, bytes.length]) {
        expect(parseInPieces(bytes, Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => (i + 1) * size)).records).toEqual(rows);
      }
    }
  });

  it('chunks far larger than a text piece (64 KiB) parse to the same records, whole or cut anywhere', () => {
    const rows = Array.from({ length: 3000 }, (_, i) => paymentBillRecord({
      trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: `42${i}`, out_trade_no: `S${i}`, total_fee: 100 + i,
      description: i % 7 === 0 ? '门店A-午餐套餐' : `item ${i}`, attach: 'x'.repeat(i % 300),
    }));
    const bytes = Buffer.from(formatTradeBill(rows, { billType: 'ALL' }), 'utf8');
    expect(bytes.length).toBeGreaterThan(4 * 64 * 1024);
    for (const cuts of [[], [200_000, 200_001, 700_000], [65_535, 131_073, 400_000]]) {
      const got = parseInPieces(bytes, cuts);
      expect(got.records).toEqual(rows);
      expect(got.summary).toEqual(summarizeTradeBill(rows));
    }
  });

  it('non-ASCII text in any text column, in any column order, decodes exactly (REFUND layout, refund times last)', () => {
    // The parser reads rows as latin1 and decodes a field as UTF-8 only when it holds a
    // non-ASCII byte; REFUND bills carry their refund time columns early but the record sets
    // them last, so this also covers fields visited out of column order.
    const base = paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: '42', out_trade_no: 'S1', total_fee: 100, description: '门店A-午餐套餐' });
    const r: TradeBillRecord = {
      ...base, device_info: '收银台1', openid: 'oé门', bank_type: '招商银行', refund_apply_time: '申请 2025', refund_success_time: '成功 é',
      refund_type: '原路', refund_status: '成功', attach: '附加,数据', rate_note: '费率备注。', trade_state: 'REFUND', refund_id: '5001', out_refund_no: 'R1', refund_fee: 50,
    };
    const plain: TradeBillRecord = { ...base, trade_time: '2025-03-14 12:04:00', out_trade_no: 'S2', description: 'ascii only' };
    for (const text of [formatTradeBill([r, plain, r], { billType: 'REFUND' }), formatTradeBill([plain, r], { billType: 'REFUND', eol: '\n', bom: true })]) {
      const bytes = Buffer.from(text, 'utf8');
      for (const size of [1, 5, 64, bytes.length]) {
        const got = parseInPieces(bytes, Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => (i + 1) * size)).records;
        expect(got.filter((x) => x.out_trade_no === 'S1')).toEqual(text.startsWith('\uFEFF') ? [r] : [r, r]);
        expect(got.find((x) => x.out_trade_no === 'S2')).toMatchObject({ description: 'ascii only', refund_apply_time: '' });
      }
    }
  });

  it('a body without line breaks fails with a clear error after MAX_LINE_BYTES instead of buffering without bound (13.12)', () => {
    const p = new TradeBillParser();
    const junk = Buffer.alloc(8192, 0x41);
    let err: unknown;
    let fed = 0;
    try {
      for (let i = 0; i < 1000; i++) {
        p.push(junk);
        fed += junk.length;
      }
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BillError);
    expect((err as BillError).code).toBe('BILL_MALFORMED');
    expect((err as Error).message).toMatch(/line 1: line longer than 65536 bytes without a line break/);
    // It stopped at the limit, not at the end of the input.
    expect(fed).toBeLessThanOrEqual(MAX_LINE_BYTES);
    // A long line split over many chunks is bounded the same way, also after good lines.
    const good = formatTradeBill([paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: '42', out_trade_no: 'S1', total_fee: 100 })]).split('\r\n').slice(0, 2).join('\r\n') + '\r\n';
    const q = new TradeBillParser();
    expect(q.push(Buffer.from(good)).length).toBe(1);
    q.push(Buffer.from('`' + 'x'.repeat(MAX_LINE_BYTES - 1)));
    expect(() => q.push(Buffer.from('yy'))).toThrowError(/line 3: line longer than/);
    // A line just within the limit is fine (refused later for what it is, not for its length).
    const r = new TradeBillParser();
    r.push(Buffer.from('a'.repeat(MAX_LINE_BYTES)));
    expect(() => r.push(Buffer.from('\n'))).toThrowError(/not a trade bill header/);
  });
});

async function* chunks(buf: Buffer, size = 7): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

describe('verified bill stream (gzip, SHA1)', () => {
  const rows = Array.from({ length: 50 }, (_, i) => paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: `4200${i}`, out_trade_no: `S${1000 + i}`, total_fee: 100 + i, description: '饮品' }));
  const text = Buffer.from(formatTradeBill(rows, { bom: true }), 'utf8');
  const sha1 = createHash('sha1').update(text).digest('hex');

  it('gunzips, hashes the decompressed bytes and yields every record', async () => {
    const s = verifiedBillStream(chunks(gzipSync(text), 13), { hash_type: 'SHA1', hash_value: sha1.toUpperCase() });
    const got: TradeBillRecord[] = [];
    for await (const r of s) got.push(r);
    expect(got.map((r) => r.out_trade_no)).toEqual(rows.map((r) => r.out_trade_no));
    expect((await s.summary()).total_fee).toBe(rows.reduce((a, r) => a + r.total_fee, 0));
  });

  it('plain (not gzip) bills work too', async () => {
    const s = verifiedBillStream(chunks(text), { hash_type: 'SHA1', hash_value: sha1 });
    expect((await s.summary()).total_count).toBe(50);
  });

  it('a gzip bill with a wrong hash is rejected with HASH_MISMATCH', async () => {
    const wrong = createHash('sha1').update(gzipSync(text)).digest('hex'); // hash of the compressed bytes: wrong
    const s = verifiedBillStream(chunks(gzipSync(text)), { hash_type: 'SHA1', hash_value: wrong }, { gzip: true });
    await expect((async () => { for await (const _ of s) void _; })()).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
    await expect(s.summary()).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
  });

  it('an altered byte in the file is caught by the hash', async () => {
    const bad = Buffer.from(text.toString('utf8').replace('`1.01', '`1.02'), 'utf8');
    const s = verifiedBillStream(chunks(gzipSync(bad)), { hash_type: 'SHA1', hash_value: sha1 });
    await expect(s.summary()).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
  });

  it('refuses non-SHA1 hashes and corrupt gzip', async () => {
    expect(() => verifiedBillStream(chunks(text), { hash_type: 'MD5', hash_value: sha1 })).toThrowError(expect.objectContaining({ code: 'HASH_TYPE_UNSUPPORTED' }));
    const gz = gzipSync(text);
    const corrupt = Buffer.concat([gz.subarray(0, 40), Buffer.alloc(40, 7)]);
    await expect(verifiedBillStream(chunks(corrupt), { hash_type: 'SHA1', hash_value: sha1 }).summary()).rejects.toMatchObject({ code: 'BILL_MALFORMED' });
  });
});

describe('verified bill stream releases its source', () => {
  // The source stands in for the HTTP download: its `finally` is where the client's generator
  // destroys the response stream. A bill abandoned part-way must reach it, or the socket stays open.
  const rows = Array.from({ length: 200 }, (_, i) => paymentBillRecord({ trade_time: '2025-03-14 12:03:41', appid: 'wx1', mchid: '1900000109', transaction_id: `4200${i}`, out_trade_no: `S${1000 + i}`, total_fee: 100 + i }));
  const text = Buffer.from(formatTradeBill(rows), 'utf8');
  const sha1 = createHash('sha1').update(text).digest('hex');
  function tracked(buf: Buffer): { source: AsyncGenerator<Buffer>; released: () => boolean } {
    let done = false;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < buf.length; i += 64) yield buf.subarray(i, i + 64);
      } finally {
        done = true;
      }
    }
    return { source: source(), released: () => done };
  }

  for (const [name, gzip, body] of [
    ['plain, sniffed', undefined, text],
    ['gzip, sniffed', undefined, gzipSync(text)],
    ['gzip, declared', true, gzipSync(text)],
  ] as const) {
    it(`${name}: a consumer that stops early releases the download`, async () => {
      const t = tracked(body);
      const s = verifiedBillStream(t.source, { hash_type: 'SHA1', hash_value: sha1 }, { gzip });
      for await (const _ of s) break;
      await new Promise((r) => setTimeout(r, 20));
      expect(t.released()).toBe(true);
    });
  }

  it('a malformed row part-way releases the download', async () => {
    const bad = Buffer.from(text.toString('utf8').replace('`1.05,', '`x.05,'), 'utf8');
    const t = tracked(bad);
    const s = verifiedBillStream(t.source, { hash_type: 'SHA1', hash_value: sha1 });
    await expect(s.summary()).rejects.toMatchObject({ code: 'BILL_MALFORMED' });
    await new Promise((r) => setTimeout(r, 20));
    expect(t.released()).toBe(true);
  });
});

describe('isCalendarDate', () => {
  it('accepts real days and refuses days Date would roll over', async () => {
    const { isCalendarDate } = await import('../../shared/wechatpay/time');
    expect(isCalendarDate('2024-02-29')).toBe(true);
    expect(isCalendarDate('2025-12-31')).toBe(true);
    for (const bad of ['2025-02-29', '2025-02-30', '2025-13-01', '2025-00-10', '2025-1-01', '20250101', '']) {
      expect(isCalendarDate(bad), bad).toBe(false);
    }
  });
});
