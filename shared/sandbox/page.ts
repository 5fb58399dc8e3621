/**
 * The `/sandbox` page: open orders as a phone would show them (QR code, merchants, amount, Pay
 * buttons) and the notification log with the receiver's replies. Server-rendered, no external
 * assets; the small inline script only posts to /sandbox/pay and refreshes.
 */
import QRCode from 'qrcode';
import { fenToYuan } from '../wechatpay/money';
import { formatBeijingBill } from '../wechatpay/time';
import type { SandboxServer } from './server';
import { refundsOf } from './refunds';

const esc = (s: unknown) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const STATE_LABEL: Record<string, string> = {
  NOTPAY: '待支付', USERPAYING: '支付中', SUCCESS: '已支付', CLOSED: '已关闭', PAYERROR: '支付失败',
};

/** The page speaks Beijing time (the buyer's and WeChat Pay's clock), never UTC. */
const bj = (iso: unknown) => (typeof iso === 'string' && iso ? formatBeijingBill(Date.parse(iso)) : '');

/** The label of an order's state; an unpaid order past time_expire can no longer be paid. */
const stateLabel = (o: Record<string, unknown>) => (o.expired ? '已过期（待商户关单）' : STATE_LABEL[o.state as string] ?? String(o.state));

const REFUND_LABEL: Record<string, string> = { PROCESSING: '退款中', SUCCESS: '已退款', ABNORMAL: '退款异常', CLOSED: '退款关闭' };

const KIND_LABEL: Record<string, string> = { delivery: '通知', probe: '签名探测', duplicate: '重复通知' };

/** A probe is answered correctly when refused; anything else correctly when 2xx. */
function replyCell(d: { kind: string; ok: boolean; status?: number; error?: string; reply?: string }): string {
  const good = d.kind === 'probe' ? !d.ok : d.ok;
  const note = d.kind === 'probe' ? (d.ok ? ' ⚠ 商户接受了探测签名（应拒绝）' : ' ✓ 已拒绝') : '';
  return `<td class="${good ? 'ok' : 'bad'}">${esc(d.status ?? '')} ${esc(d.error ?? d.reply ?? '')}${esc(note)}</td>`;
}

export async function renderPage(sb: SandboxServer): Promise<string> {
  const orders = sb.orderList().reverse();
  const open = orders.filter((o) => !o.expired && (o.state === 'NOTPAY' || o.state === 'USERPAYING' || o.state === 'PAYERROR'));
  const done = orders.filter((o) => !open.includes(o)).slice(0, 20);
  const cards = await Promise.all(
    open.map(async (o) => {
      const svg = await QRCode.toString(String(o.code_url), { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
      const subs = o.sub_orders as { name: string; description: string; amount: number }[];
      return `<article class="card">
  <div class="qr">${svg}</div>
  <div class="info">
    <div class="total">¥${esc(fenToYuan(o.total_amount as number))}</div>
    <div class="state s-${esc(o.state)}">${esc(STATE_LABEL[o.state as string] ?? o.state)}</div>
    <ul>${subs.map((s) => `<li><b>${esc(s.name)}</b> ${esc(s.description)} <span>¥${esc(fenToYuan(s.amount))}</span></li>`).join('')}</ul>
    <div class="meta">${o.kind === 'basic' ? '单商户 · ' : '合单 · '}单号 ${esc(o.combine_out_trade_no)}<br>最晚支付 ${esc(bj(o.expires_at))}</div>
    <div class="buttons">
      <button data-code="${esc(o.code_url)}" data-outcome="SUCCESS" class="pay">确认支付</button>
      <button data-code="${esc(o.code_url)}" data-outcome="USERPAYING">输入密码中</button>
      <button data-code="${esc(o.code_url)}" data-outcome="PAYERROR" class="fail">支付失败</button>
    </div>
  </div>
</article>`;
    }),
  );
  const deliveries = sb.store.state.deliveries.slice(-30).reverse();
  // The buyer's refunds, as the phone's payment records show them (newest first).
  const refunds = refundsOf(sb.store).reverse().slice(0, 30);
  const pending = sb.store.state.pending;
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>微信支付沙箱 · 买家手机</title>
<style>
body{margin:0;font:15px/1.5 system-ui,"Noto Sans CJK SC","PingFang SC",sans-serif;background:#ededed;color:#111}
header{background:#07c160;color:#fff;padding:14px 20px;font-size:18px;font-weight:600}
header small{font-weight:400;opacity:.85;margin-left:8px}
main{max-width:980px;margin:0 auto;padding:16px}
h2{font-size:16px;margin:22px 0 10px;color:#333}
.card{display:flex;gap:16px;background:#fff;border-radius:10px;padding:14px;margin-bottom:12px;box-shadow:0 1px 3px #0001}
.qr svg{width:150px;height:150px;display:block}
.info{flex:1;min-width:0}
.total{font-size:28px;font-weight:700}
.state{display:inline-block;font-size:12px;padding:1px 8px;border-radius:9px;background:#f2f2f2}
.s-USERPAYING{background:#fff3cd}.s-PAYERROR{background:#fde2e1}.s-SUCCESS{background:#d9f7e6}.s-CLOSED{background:#e8e8e8}
ul{margin:8px 0;padding-left:18px}li span{color:#666;float:right}
.meta{color:#888;font-size:12px}
.buttons{margin-top:10px;display:flex;gap:8px;flex-wrap:wrap}
button{border:0;border-radius:6px;padding:8px 14px;font-size:14px;cursor:pointer;background:#e9e9e9}
button.pay{background:#07c160;color:#fff}button.fail{background:#fa5151;color:#fff}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:10px;overflow:hidden;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.ok{color:#07a050}td.bad{color:#d33}
.empty{color:#888;background:#fff;border-radius:10px;padding:16px}
#msg{position:fixed;bottom:16px;left:50%;transform:translateX(-50%);background:#333;color:#fff;padding:8px 16px;border-radius:6px;display:none}
</style></head><body>
<header>微信支付沙箱<small>扫码付款模拟 · 本机 · 北京时间 ${esc(formatBeijingBill(sb.now()))}</small></header>
<main>
<h2>待支付订单（${open.length}）</h2>
${cards.join('\n') || '<div class="empty">暂无待支付订单。收银台下单后，订单会出现在这里。</div>'}
<h2>支付结果通知（待重试 ${pending.length}）</h2>
${deliveries.length ? `<table><thead><tr><th>时间（北京）</th><th>订单</th><th>类型</th><th>第几次</th><th>商户应答</th></tr></thead><tbody>
${deliveries.map((d) => `<tr><td>${esc(formatBeijingBill(d.at_ms).slice(11))}</td><td>${esc(d.order)}</td><td>${esc(KIND_LABEL[d.kind] ?? d.kind)}</td><td>${d.attempt}</td>${replyCell(d)}</tr>`).join('\n')}
</tbody></table>` : '<div class="empty">尚未发送通知。</div>'}
<h2>退款（${refunds.length}）</h2>
${refunds.length ? `<table><thead><tr><th>申请时间（北京）</th><th>商户</th><th>商户订单号</th><th>退款金额</th><th>状态</th><th>到账</th></tr></thead><tbody>
${refunds.map((r) => `<tr><td>${esc(formatBeijingBill(r.created_at))}</td><td>${esc(sb.cfg.names.get(r.mchid) ?? r.mchid)}</td><td>${esc(r.out_trade_no)}</td><td>¥${esc(fenToYuan(r.refund))} / ¥${esc(fenToYuan(r.total))}</td><td class="${r.status === 'SUCCESS' ? 'ok' : r.status === 'PROCESSING' ? '' : 'bad'}">${esc(REFUND_LABEL[r.status] ?? r.status)}</td><td>${esc(r.status === 'SUCCESS' ? `${r.user_received_account} ${formatBeijingBill(r.success_at!)}` : '')}</td></tr>`).join('\n')}
</tbody></table>` : '<div class="empty">暂无退款。</div>'}
<h2>最近订单</h2>
${done.length ? `<table><thead><tr><th>单号</th><th>金额</th><th>状态</th><th>支付时间（北京）</th></tr></thead><tbody>
${done.map((o) => `<tr><td>${esc(o.combine_out_trade_no)}</td><td>¥${esc(fenToYuan(o.total_amount as number))}</td><td>${esc(stateLabel(o))}</td><td>${esc(bj(o.paid_at))}</td></tr>`).join('\n')}
</tbody></table>` : '<div class="empty">暂无。</div>'}
</main>
<div id="msg"></div>
<script>
const msg = document.getElementById('msg');
let busy = false;
document.addEventListener('click', async (e) => {
  const b = e.target.closest('button[data-code]');
  if (!b) return;
  busy = true;
  const r = await fetch('/sandbox/pay', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code_url: b.dataset.code, outcome: b.dataset.outcome }) });
  const j = await r.json();
  msg.textContent = r.ok ? ({ SUCCESS: '支付成功', USERPAYING: '支付中…', PAYERROR: '支付失败' })[j.state] : (j.message || '出错了');
  msg.style.display = 'block';
  setTimeout(() => location.reload(), 900);
});
setInterval(() => { if (!busy) location.reload(); }, 5000);
</script>
</body></html>`;
}
