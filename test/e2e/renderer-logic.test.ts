/** The renderer's pure rules, without a browser: money display and entry, and building the sale. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyKey, entryToFen, formatFen, percent, pushKey } from '../../renderer/src/money';
import { buildRequest, cartTotal, ChargeKeys } from '../../renderer/src/screens/cart';
import type { Order, Settings, SubMerchantInfo } from '../../shared/contracts/terminal-api';
import {
  closeWaitSeconds, confirmAboveFen, DEFAULT_CONFIRM_ABOVE_FEN, displayStatus, isFailed, isWaiting, needsConfirmation,
  orderKind, sameSaleKey, sameSaleRequest, subLabel,
} from '../../renderer/src/orders';
import { buildUpdate, formValues, translatedErrors } from '../../renderer/src/settings-form';
import { badFieldText } from '../../renderer/src/errors';
import { setLanguage } from '../../renderer/src/i18n';
import { beijingDateTime } from '../../renderer/src/time';
import { addDays, isDay } from '../../renderer/src/components/DateField';
import { billSummary } from '../../renderer/src/bills';
import type { ReconciliationReport } from '../../shared/contracts/terminal-api';

describe('money display', () => {
  it('formats integer fen with two decimals and grouping', () => {
    expect(formatFen(0)).toBe('¥0.00');
    expect(formatFen(5)).toBe('¥0.05');
    expect(formatFen(1250)).toBe('¥12.50');
    expect(formatFen(123456789)).toBe('¥1,234,567.89');
    expect(formatFen(-30)).toBe('-¥0.30');
    expect(formatFen(1.5)).toBe('¥—');
  });

  it('round-trips every amount through the display string', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 99_999_999 }), (fen) => {
      const shown = formatFen(fen).slice(1).replace(/,/g, '');
      expect(entryToFen(shown)).toBe(fen);
    }));
  });

  it('bar widths are integer percentages', () => {
    expect(percent(1, 3)).toBe(33);
    expect(percent(5, 0)).toBe(0);
    expect(percent(7, 7)).toBe(100);
  });
});

describe('keypad entry', () => {
  const type = (keys: string[]) => keys.reduce((e, k) => pushKey(e, k) ?? e, '');

  it('accepts at most one dot and two decimals, ignores the rest', () => {
    expect(type(['1', '2', '.', '5'])).toBe('12.5');
    expect(entryToFen('12.5')).toBe(1250);
    expect(type(['.', '0', '5', '9'])).toBe('0.05');
    expect(type(['1', '.', '.', '2'])).toBe('1.2');
    expect(type(['0', '0', '7'])).toBe('7');
    expect(type(['3', '00'])).toBe('300');
    expect(type(['3', '.', '1', '00'])).toBe('3.10');
    expect(pushKey('9999999', '9')).toBeNull();
    expect(entryToFen('1.234')).toBeNull();
    expect(entryToFen('abc')).toBeNull();
  });

  it('says why a key is refused instead of dropping it silently', () => {
    expect(applyKey('1.2', '.')).toEqual({ ok: false, reason: 'SECOND_DOT' });
    expect(applyKey('1.25', '3')).toEqual({ ok: false, reason: 'DECIMALS' });
    // The 7th integer digit would pass ¥999,999.99: refused with a reason the screen shows.
    expect(applyKey('310000', '0')).toEqual({ ok: false, reason: 'TOO_LARGE' });
    expect(applyKey('31000', '0')).toEqual({ ok: true, entry: '310000' });
    expect(applyKey('12', 'x')).toEqual({ ok: false, reason: 'NOT_A_KEY' });
    expect(applyKey('99999', '00')).toEqual({ ok: true, entry: '999990' });
  });
});

describe('large amounts ask first', () => {
  it('defaults to ¥5,000 and takes confirm_above_fen when the settings carry it', () => {
    expect(DEFAULT_CONFIRM_ABOVE_FEN).toBe(500_000);
    expect(confirmAboveFen(null)).toBe(500_000);
    expect(confirmAboveFen({ confirm_above_fen: 100_000 })).toBe(100_000);
    expect(confirmAboveFen({ confirm_above_fen: -1 })).toBe(500_000);
    expect(needsConfirmation(500_000, 500_000)).toBe(false);
    expect(needsConfirmation(500_001, 500_000)).toBe(true);
    expect(needsConfirmation(31_000_000, confirmAboveFen(null))).toBe(true);
  });
});

describe('building the combined order', () => {
  const merchants: SubMerchantInfo[] = [
    { mchid: '1900000101', name: '老王牛肉面', catalog: [{ sku: 'A', name: '红烧牛肉面', price: 2800 }, { sku: 'B', name: '卤蛋', price: 300 }] },
    { mchid: '1900000102', name: '甜心奶茶铺', catalog: [{ sku: 'C', name: '珍珠奶茶', price: 1500 }] },
    { mchid: '1900000103', name: '晨光书报亭' },
  ];

  it('refuses an empty sale and builds a one-merchant sale (the relay pays it with basic Native)', () => {
    expect(buildRequest(merchants, {})).toEqual({ ok: false, reason: 'EMPTY' });
    const single = buildRequest(merchants, { '1900000101': { items: { A: 1 }, entry: '' } });
    expect(single).toEqual({ ok: true, total: 2800, request: { sub_orders: [{ mchid: '1900000101', description: '红烧牛肉面', amount: 2800 }] } });
  });

  it('sums goods and typed amounts per merchant in fen', () => {
    const cart = {
      '1900000101': { items: { A: 2, B: 1 }, entry: '0.1' },
      '1900000102': { items: {}, entry: '' },
      '1900000103': { items: {}, entry: '0.2' },
    };
    const r = buildRequest(merchants, cart);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.request.sub_orders).toEqual([
      { mchid: '1900000101', description: '红烧牛肉面×2、卤蛋', amount: 5910 },
      { mchid: '1900000103', description: '晨光书报亭', amount: 20 },
    ]);
    expect(r.total).toBe(5930);
    expect(cartTotal(merchants, cart)).toBe(5930);
  });

  it('keeps each description within the 127 UTF-8 bytes the relay and WeChat Pay accept', () => {
    // 30 distinct Chinese goods: ~300 bytes of names, far above the limit in bytes, below it in characters.
    const catalog = Array.from({ length: 30 }, (_, i) => ({ sku: `S${i}`, name: `牛肉面${i}`, price: 100 }));
    const big: SubMerchantInfo[] = [{ mchid: '1900000301', name: '面馆', catalog }, { mchid: '1900000302', name: '茶铺😀' }];
    const cart = {
      '1900000301': { items: Object.fromEntries(catalog.map((c) => [c.sku, 1])), entry: '' },
      '1900000302': { items: {}, entry: '1' },
    };
    const r = buildRequest(big, cart);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    for (const so of r.request.sub_orders) {
      expect(Buffer.byteLength(so.description, 'utf8')).toBeLessThanOrEqual(127);
      expect(so.description.length).toBeGreaterThan(0);
      // The API takes only 1-3-byte UTF-8 characters: no emoji.
      expect(/[\u{10000}-\u{10FFFF}]/u.test(so.description)).toBe(false);
    }
    expect(r.request.sub_orders[0]!.description.startsWith('牛肉面0、牛肉面1')).toBe(true);
    expect(r.request.sub_orders[0]!.description.endsWith('…')).toBe(true);
    expect(r.request.sub_orders[1]!.description).toBe('茶铺');
  });

  it('refuses more than ten merchants', () => {
    const many: SubMerchantInfo[] = Array.from({ length: 11 }, (_, i) => ({ mchid: String(1900000200 + i), name: `M${i}` }));
    const cart = Object.fromEntries(many.map((m) => [m.mchid, { items: {}, entry: '1' }]));
    expect(buildRequest(many, cart)).toEqual({ ok: false, reason: 'TOO_MANY', count: 11 });
    expect(buildRequest(many.slice(0, 10), cart).ok).toBe(true);
  });
});

describe('idempotency key of a 收款 press', () => {
  const req = (amount: number) => ({ sub_orders: [{ mchid: '1', description: 'a', amount }, { mchid: '2', description: 'b', amount: 1 }] });
  let n = 0;
  const fresh = () => `key-${++n}`;

  it('reuses the key when the same sale is charged again after an unknown outcome, never after a known one', () => {
    const keys = new ChargeKeys();
    const first = keys.keyFor(req(100), fresh);
    keys.settle('RELAY_TIMEOUT'); // the relay may have created the order: a re-press must get that order back
    expect(keys.keyFor(req(100), fresh)).toBe(first);
    keys.settle('NETWORK');
    expect(keys.keyFor(req(100), fresh)).toBe(first);
    // A changed sale is a different order: new key.
    const changed = keys.keyFor(req(200), fresh);
    expect(changed).not.toBe(first);
    keys.settle(null); // created: the next sale, even identical, is a new order
    const next = keys.keyFor(req(200), fresh);
    expect(next).not.toBe(changed);
    keys.settle('UPSTREAM_PARAM_ERROR'); // a definite refusal: a re-press is a new attempt
    expect(keys.keyFor(req(200), fresh)).not.toBe(next);
  });
});

describe('latest answer only (manager reloads per input change)', () => {
  it('a slow earlier answer arriving last is not applied; nor is its failure', async () => {
    const { latestOnly } = await import('../../renderer/src/latest');
    const latest = latestOnly();
    const shown: string[] = [];
    let releaseOld!: (v: string) => void;
    const old = latest(new Promise<string>((ok) => { releaseOld = ok; }), (v) => shown.push(v));
    await latest(Promise.resolve('2026-11-27'), (v) => shown.push(v));
    releaseOld('2026-11-26');
    await old;
    expect(shown).toEqual(['2026-11-27']);
    let failOld!: (e: Error) => void;
    const oldFail = latest(new Promise<string>((_, no) => { failOld = no; }), (v) => shown.push(v));
    await latest(Promise.resolve('2026-11-28'), (v) => shown.push(v));
    failOld(new Error('superseded'));
    await expect(oldFail).resolves.toBeUndefined();
    await expect(latest(Promise.reject(new Error('current')), () => undefined)).rejects.toThrow('current');
    expect(shown).toEqual(['2026-11-27', '2026-11-28']);
  });
});

const order = (over: Partial<Order> & Record<string, unknown> = {}): Order => ({
  combine_out_trade_no: 'P20261129120000000001',
  state: 'NOTPAY',
  total_amount: 4300,
  description: null,
  code_url: 'weixin://wxpay/bizpayurl?pr=abc',
  created_at: '2026-11-29T04:00:00.000Z',
  expires_at: '2026-11-29T04:30:00.000Z',
  paid_at: null,
  closed_at: null,
  terminal: 'till-1',
  sub_orders: [
    { mchid: '1900000101', out_trade_no: 'P20261129120000000001-1', description: '老王牛肉面', amount: 2800, attach: 'P20261129120000000001', transaction_id: null, state: 'NOTPAY' },
    { mchid: '1900000102', out_trade_no: 'P20261129120000000001-2', description: '珍珠奶茶', amount: 1500, transaction_id: null, state: 'NOTPAY' },
  ],
  creation: 'CREATED',
  ...over,
});

describe('how orders are shown', () => {
  it('a create refused by WeChat Pay is failed, not waiting for a scan', () => {
    const failed = order({ creation: 'FAILED', code_url: null, error_code: 'PARAM_ERROR', error_message: '参数错误' });
    expect(displayStatus(failed)).toBe('CREATE_FAILED');
    expect(isWaiting(failed)).toBe(false);
    expect(isFailed(failed)).toBe(true);
    expect(displayStatus(order())).toBe('NOTPAY');
    expect(isWaiting(order())).toBe(true);
    expect(isWaiting(order({ creation: 'PENDING' }))).toBe(true);
    expect(isFailed(order({ state: 'PAYERROR' }))).toBe(true);
    expect(isWaiting(order({ state: 'PAYERROR' }))).toBe(false);
  });

  it('tags single sales; an order without kind (recorded before) is combined', () => {
    expect(orderKind(order())).toBe('combine');
    expect(orderKind(order({ kind: 'combine' }))).toBe('combine');
    expect(orderKind(order({ kind: 'single' }))).toBe('single');
  });

  it('a new QR for a failed sale repeats its lines, with a key that makes a double press one order', () => {
    const o = order({ state: 'PAYERROR' });
    expect(sameSaleRequest(o)).toEqual({
      sub_orders: [
        { mchid: '1900000101', description: '老王牛肉面', amount: 2800 },
        { mchid: '1900000102', description: '珍珠奶茶', amount: 1500 },
      ],
    });
    expect(sameSaleKey(o)).toBe(sameSaleKey(order({ state: 'PAYERROR' })));
    expect(sameSaleKey(o)).not.toBe(sameSaleKey(order({ combine_out_trade_no: 'P20261129120000000002' })));
    expect(sameSaleKey(o)).toMatch(/^[\x21-\x7e]{1,128}$/);
  });

  it('a typed amount (described by the merchant name) is labelled once', () => {
    expect(subLabel('老王牛肉面', '老王牛肉面')).toBe('老王牛肉面');
    expect(subLabel('老王牛肉面', '红烧牛肉面×2')).toBe('老王牛肉面 · 红烧牛肉面×2');
    expect(subLabel(undefined, '珍珠奶茶')).toBe('珍珠奶茶');
  });

  it('the close button counts down the 5-minute rule, and the relay’s answer overrides it', () => {
    const created = Date.parse('2026-11-29T04:00:00.000Z');
    expect(closeWaitSeconds(order(), created + 60_000)).toBe(240);
    expect(closeWaitSeconds(order(), created + 300_000)).toBe(0);
    expect(closeWaitSeconds(order(), created + 60_000, created + 65_000)).toBe(5);
    expect(closeWaitSeconds(order(), created + 70_000, created + 65_000)).toBe(0);
  });

  it('dates read YYYY-MM-DD, Beijing time; the day field takes only real days', () => {
    expect(beijingDateTime('2026-11-29T16:05:09.000Z')).toBe('2026-11-30 00:05:09');
    expect(isDay('2026-11-29')).toBe(true);
    expect(isDay('2026-02-30')).toBe(false);
    expect(isDay('11/29/2026')).toBe(false);
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
    expect(addDays('2024-03-01', -1)).toBe('2024-02-29');
  });
});

describe('settings form', () => {
  const stored: Settings = {
    relay_url: 'http://127.0.0.1:8080', terminal_token_set: true, manager_token_set: false, printer: 'preview',
    paper_width: 80, language: 'en', qr_mode: 'native', stale_minutes: 10,
    store_name: '', store_address: '', store_logo: '', cashier_name: '', confirm_above_fen: 500000, customer_display: 'auto',
  };

  it('sends only what was edited: a language switched in the header is not reverted', () => {
    // The header switched to English (stored.language = en); the form edited the printer only.
    const update = buildUpdate({ printer: 'tcp://10.0.0.5:9100' }, {});
    expect(update).toEqual({ printer: 'tcp://10.0.0.5:9100' });
    expect('language' in update).toBe(false);
    expect(formValues(stored, { printer: 'x' }).language).toBe('en');
  });

  it('tokens: kept unless replaced (non-empty) or cleared (null); never read back', () => {
    expect(buildUpdate({}, { terminal_token: { kind: 'keep' } })).toEqual({});
    expect(buildUpdate({}, { terminal_token: { kind: 'replace', value: '' } })).toEqual({});
    expect(buildUpdate({}, { terminal_token: { kind: 'replace', value: 'tok-2' } })).toEqual({ terminal_token: 'tok-2' });
    expect(buildUpdate({}, { manager_token: { kind: 'clear' } })).toEqual({ manager_token: null });
    expect(Object.keys(stored)).not.toContain('terminal_token');
  });

  it('field errors are shown in the screen’s language', () => {
    setLanguage('zh-CN');
    const zh = translatedErrors({ relay_url: 'relay_url must be an http(s) URL without query or fragment', stale_minutes: 'Too small: expected number to be >=1' });
    expect(zh.relay_url).toContain('http://');
    expect(zh.relay_url).toMatch(/[\u4e00-\u9fff]/);
    expect(zh.stale_minutes).toContain('1 到 1440');
    setLanguage('en');
    expect(translatedErrors({ stale_minutes: 'x' }).stale_minutes).toBe('Enter whole minutes from 1 to 1440.');
    setLanguage('zh-CN');
  });

  it('a refused field is named once, in words (no "bill_date: bill_date: …")', () => {
    setLanguage('zh-CN');
    expect(badFieldText('bill_date', 'bill_date: 2099-01-01 is in the future')).toBe('账单日期不能晚于今天（北京时间）。');
    const other = badFieldText('stale', 'stale: must be a number');
    expect(other.match(/stale/g)).toHaveLength(1);
    expect(badFieldText('sub_orders', 'sub_orders: needs 2 to 10 sub-orders, got 1')).toContain('单一商户');
    expect(badFieldText('sub_orders[0].amount', 'sub_orders[0].amount: must be positive')).toBe('“金额”填写有误，请检查。');
  });
});

describe('bill verdict', () => {
  const merchant = (mchid: string, status: string) => ({ mchid, name: mchid, status, bill_count: 0, bill_amount: 0, local_count: 0, local_amount: 0, fee_amount: 0 });
  const report = (ok: boolean, statuses: string[], mismatches = 0) => ({
    bill_date: '2026-11-28', generated_at: '2026-11-29T10:00:00+08:00', ok,
    merchants: statuses.map((s, i) => merchant(`19000001${i}`, s)),
    mismatches: [], mismatch_count: mismatches, mismatches_truncated: false,
  }) as unknown as ReconciliationReport;

  it('a day with a bill not ready or a merchant without keys is never called reconciled', () => {
    setLanguage('zh-CN');
    expect(billSummary(report(true, ['OK', 'NO_STATEMENT']))).toBe('账单与本地记录一致');
    const incomplete = billSummary(report(false, ['OK', 'NOT_READY', 'NO_KEYS']));
    expect(incomplete).toContain('2 个商户未能核对');
    expect(incomplete).not.toContain('一致');
    expect(billSummary(report(false, ['OK', 'OK'], 3))).toBe('发现 3 处不一致');
  });
});
