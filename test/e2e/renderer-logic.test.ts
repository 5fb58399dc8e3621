/** The renderer's pure rules, without a browser: money display and entry, and building the sale. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { entryToFen, formatFen, percent, pushKey } from '../../renderer/src/money';
import { buildRequest, cartTotal } from '../../renderer/src/screens/cart';
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

  it('refuses more than ten merchants', () => {
    const many: SubMerchantInfo[] = Array.from({ length: 11 }, (_, i) => ({ mchid: String(1900000200 + i), name: `M${i}` }));
    const cart = Object.fromEntries(many.map((m) => [m.mchid, { items: {}, entry: '1' }]));
    expect(buildRequest(many, cart)).toEqual({ ok: false, reason: 'TOO_MANY' });
  });
});
