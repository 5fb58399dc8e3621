/**
 * Order numbers: time-sortable, unique, `[0-9A-Za-z_-]` only (they go into signed URL paths),
 * 6–32 characters. `C` + 9 base36 digits of milliseconds + 8 random base62 characters;
 * sub-orders reuse the stem with `S` and a two-digit index, so they sort with their order.
 */
import { randomBytes } from 'node:crypto';

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function random62(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248 && out.length < n) out += B62[b % 62];
    }
  }
  return out;
}

let lastMs = 0;

export function newCombineOutTradeNo(now = Date.now()): string {
  // Never go backwards within this process, so numbers stay sortable if the clock steps back.
  const ms = Math.max(now, lastMs);
  lastMs = ms;
  return 'C' + ms.toString(36).toUpperCase().padStart(9, '0') + random62(8);
}

export function subOutTradeNo(combine: string, index: number): string {
  return 'S' + combine.slice(1) + String(index + 1).padStart(2, '0');
}

/** The one order-number pattern (the client's): what the relay makes always passes it. */
export { ORDER_NO } from '../wechatpay/validate';
