/**
 * The sale being rung up: goods and typed amounts per sub-merchant, and the combined-order
 * request built from it. Pure functions so the rules (2–10 merchants, fen sums) are testable.
 */
import type { CreateOrderRequest, SubMerchantInfo } from '../../../shared/contracts/relay-api';
import { entryToFen } from '../money';

export interface MerchantCart {
  /** sku → quantity */
  items: Record<string, number>;
  /** keypad text for a typed amount, e.g. "12.5" */
  entry: string;
}

export type Cart = Record<string, MerchantCart>;

export function emptyCart(): Cart {
  return {};
}

export function merchantTotal(m: SubMerchantInfo, c: MerchantCart | undefined): number {
  if (!c) return 0;
  let fen = entryToFen(c.entry) ?? 0;
  for (const item of m.catalog ?? []) fen += (c.items[item.sku] ?? 0) * item.price;
  return fen;
}

export function cartTotal(merchants: SubMerchantInfo[], cart: Cart): number {
  return merchants.reduce((sum, m) => sum + merchantTotal(m, cart[m.mchid]), 0);
}

/** Goods names for the payer's WeChat bill (≤127 chars per the protocol). */
export function describe(m: SubMerchantInfo, c: MerchantCart): string {
  const names: string[] = [];
  for (const item of m.catalog ?? []) {
    const q = c.items[item.sku] ?? 0;
    if (q > 0) names.push(q > 1 ? `${item.name}×${q}` : item.name);
  }
  const text = names.length ? names.join('、') : m.name;
  return [...text].length > 127 ? [...text].slice(0, 126).join('') + '…' : text;
}

export type BuildResult =
  | { ok: true; request: CreateOrderRequest; total: number }
  | { ok: false; reason: 'EMPTY' | 'SINGLE_MERCHANT' | 'TOO_MANY'; merchant?: string };

export function buildRequest(merchants: SubMerchantInfo[], cart: Cart): BuildResult {
  const subs = merchants
    .map((m) => ({ m, c: cart[m.mchid], amount: merchantTotal(m, cart[m.mchid]) }))
    .filter((x) => x.amount > 0);
  if (subs.length === 0) return { ok: false, reason: 'EMPTY' };
  // Combined payment needs 2–10 sub-orders; basic Native payment is not built yet.
  if (subs.length === 1) return { ok: false, reason: 'SINGLE_MERCHANT', merchant: subs[0].m.name };
  if (subs.length > 10) return { ok: false, reason: 'TOO_MANY' };
  return {
    ok: true,
    total: subs.reduce((s, x) => s + x.amount, 0),
    request: {
      sub_orders: subs.map((x) => ({ mchid: x.m.mchid, description: describe(x.m, x.c!), amount: x.amount })),
    },
  };
}
