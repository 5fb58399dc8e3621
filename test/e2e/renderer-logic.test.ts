/** The renderer's pure rules, without a browser: money display and entry, and building the sale. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { entryToFen, formatFen, percent, pushKey } from '../../renderer/src/money';
import { buildRequest, cartTotal, ChargeKeys } from '../../renderer/src/screens/cart';
import type { SubMerchantInfo } from '../../shared/contracts/relay-api';

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
});

describe('building the combined order', () => {
  const merchants: SubMerchantInfo[] = [
    { mchid: '1900000101', name: '老王牛肉面', catalog: [{ sku: 'A', name: '红烧牛肉面', price: 2800 }, { sku: 'B', name: '卤蛋', price: 300 }] },
    { mchid: '1900000102', name: '甜心奶茶铺', catalog: [{ sku: 'C', name: '珍珠奶茶', price: 1500 }] },
    { mchid: '1900000103', name: '晨光书报亭' },
  ];

  it('refuses an empty sale and a single-merchant sale, naming the merchant', () => {
    expect(buildRequest(merchants, {})).toEqual({ ok: false, reason: 'EMPTY' });
    const single = buildRequest(merchants, { '1900000101': { items: { A: 1 }, entry: '' } });
    expect(single).toEqual({ ok: false, reason: 'SINGLE_MERCHANT', merchant: '老王牛肉面' });
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
    expect(buildRequest(many, cart)).toEqual({ ok: false, reason: 'TOO_MANY' });
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
