/**
 * Order slip with native `GS ( k` QR vs a raster (`GS v 0`) QR, on 58 and 80 mm paper: bytes on
 * the wire and build time (ops/s), native as the baseline. Target: native slip ≤ 1.5 KB.
 */
import { renderEscPos } from '../shared/terminal/printing/escpos';
import { buildReceipt } from '../shared/terminal/printing/receipt';
import type { Order } from '../shared/contracts/relay-api';

const order: Order = {
  combine_out_trade_no: 'POS20261127043000001', state: 'NOTPAY', total_amount: 12_345, description: '合单',
  code_url: 'weixin://wxpay/bizpayurl/up?pr=NwY5Mz9&groupid=00', created_at: '2026-11-27T04:30:00.000Z',
  expires_at: '2026-11-27T05:00:00.000Z', paid_at: null, closed_at: null, terminal: 'cashier-1',
  sub_orders: [
    { mchid: '1900000101', out_trade_no: 'POS20261127043000001-1', description: '陶喆专辑 CD', amount: 9_900, transaction_id: null, state: 'NOTPAY' },
    { mchid: '1900000102', out_trade_no: 'POS20261127043000001-2', description: '矿泉水 ×3', amount: 2_445, transaction_id: null, state: 'NOTPAY' },
  ],
};
const names = { '1900000101': '喆喆音像店', '1900000102': '便利店' };

function opsPerSecond(f: () => unknown, ms = 700): number {
  const warm = Date.now() + 300; // warm-up: let the JIT settle before timing
  while (Date.now() < warm) f();
  (globalThis as { gc?: () => void }).gc?.();
  let n = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() - start < limit) {
    for (let i = 0; i < 20; i++) f();
    n += 20;
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

let ok = true;
for (const width of [58, 80] as const) {
  const slip = (qrMode: 'native' | 'raster') => renderEscPos(buildReceipt({ kind: 'slip', order, merchantNames: names, reprint: false, width, language: 'zh-CN' }), { qrMode });
  const nBytes = slip('native').length;
  const rBytes = slip('raster').length;
  const nOps = opsPerSecond(() => slip('native'));
  const rOps = opsPerSecond(() => slip('raster'));
  const within = nBytes <= 1536;
  ok &&= within;
  console.log(`${width}mm slip  native: ${nBytes} B, ${nOps.toFixed(0)} ops/s | raster: ${rBytes} B, ${rOps.toFixed(0)} ops/s | raster/native bytes ×${(rBytes / nBytes).toFixed(1)}, native speed ×${(nOps / rOps).toFixed(1)} | native ≤ 1.5 KB: ${within ? 'yes' : 'NO'}`);
}
process.exit(ok ? 0 : 1);
