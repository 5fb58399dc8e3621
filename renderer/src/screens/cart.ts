/**
 * The sale being rung up: goods and typed amounts per sub-merchant, and the order request built
 * from it. Pure functions so the rules (1–10 merchants, fen sums) are testable. One merchant is a
 * basic Native sale, 2–10 a combined one: the relay decides, the cashier does not need to know.
 */
import type { CreateOrderRequest, SubMerchantInfo } from '../contract';
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

/** Limit of a sub-order description, counted in UTF-8 bytes (the relay's and the safe reading). */
export const DESCRIPTION_MAX_BYTES = 127;

const utf8Bytes = (ch: string): number => {
  const cp = ch.codePointAt(0)!;
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
};

/**
 * Goods names for the payer's WeChat bill. APIv3 takes only 1–3-byte UTF-8 characters and the
 * relay counts the 127 limit in bytes: emoji and control characters are dropped and the text is
 * cut by bytes (with "…"), so a big basket never turns into a refused order.
 */
export function describe(m: SubMerchantInfo, c: MerchantCart): string {
  const names: string[] = [];
  for (const item of m.catalog ?? []) {
    const q = c.items[item.sku] ?? 0;
    if (q > 0) names.push(q > 1 ? `${item.name}×${q}` : item.name);
  }
  const clean = (s: string) => [...s].filter((ch) => utf8Bytes(ch) < 4 && !/[\u0000-\u001f\u007f]/.test(ch)).join('').trim();
  const text = clean(names.length ? names.join('、') : m.name) || clean(m.name) || m.mchid;
  const chars = [...text];
  if (chars.reduce((n, ch) => n + utf8Bytes(ch), 0) <= DESCRIPTION_MAX_BYTES) return text;
  let out = '';
  let bytes = utf8Bytes('…');
  for (const ch of chars) {
    if (bytes + utf8Bytes(ch) > DESCRIPTION_MAX_BYTES) break;
    out += ch;
    bytes += utf8Bytes(ch);
  }
  return out + '…';
}

export type BuildResult =
  | { ok: true; request: CreateOrderRequest; total: number }
  | { ok: false; reason: 'EMPTY' }
  | { ok: false; reason: 'TOO_MANY'; count: number };

/** Most merchants in one sale (WeChat Pay's combined payment takes at most 10 sub-orders). */
export const MAX_MERCHANTS = 10;

export function buildRequest(merchants: SubMerchantInfo[], cart: Cart): BuildResult {
  const subs = merchants
    .map((m) => ({ m, c: cart[m.mchid], amount: merchantTotal(m, cart[m.mchid]) }))
    .filter((x) => x.amount > 0);
  if (subs.length === 0) return { ok: false, reason: 'EMPTY' };
  if (subs.length > MAX_MERCHANTS) return { ok: false, reason: 'TOO_MANY', count: subs.length };
  return {
    ok: true,
    total: subs.reduce((s, x) => s + x.amount, 0),
    request: {
      sub_orders: subs.map((x) => ({ mchid: x.m.mchid, description: describe(x.m, x.c!), amount: x.amount })),
    },
  };
}

/**
 * Failures after which the relay may have recorded (and WeChat Pay created) the order without the
 * till hearing back. Charging the same sale again must then reuse the press's Idempotency-Key, so
 * the relay answers with that order instead of creating a second one.
 */
const UNKNOWN_FATE = new Set(['RELAY_TIMEOUT', 'RELAY_UNREACHABLE', 'RELAY_BAD_RESPONSE', 'NETWORK', 'BAD_RESPONSE', 'SHUTTING_DOWN', 'INTERNAL']);

/** The Idempotency-Key of each 收款 press, kept for a re-press of the same sale after an unknown outcome. */
export class ChargeKeys {
  private pending: { body: string; key: string } | null = null;

  keyFor(request: CreateOrderRequest, newKey: () => string): string {
    const body = JSON.stringify(request);
    if (this.pending?.body !== body) this.pending = { body, key: newKey() };
    return this.pending.key;
  }

  /** After a press: `null` = the order came back; otherwise the failure code. */
  settle(failureCode: string | null): void {
    if (failureCode === null || !UNKNOWN_FATE.has(failureCode)) this.pending = null;
  }
}
