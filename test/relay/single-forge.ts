/**
 * Basic Native payment notifications (a single sale) built as WeChat Pay (the sandbox) builds
 * them: signed with the WeChat Pay key of the merchant they concern and encrypted with that
 * merchant's APIv3 key (read from DIR/sandbox), plus deliberate defects.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import { loadSandboxConfig } from '../../shared/sandbox/index';
import { defaultKey } from '../../shared/sandbox/auth';
import { encryptResource } from '../../shared/wechatpay/aead';
import { signBody } from '../../shared/wechatpay/sign';
import { formatBeijing } from '../../shared/wechatpay/time';
import type { Order } from '../../shared/contracts/relay-api';

export interface BasicForgeOptions {
  id?: string;
  /** Whose WeChat Pay key signs and whose APIv3 key encrypts (default: the order's merchant). */
  signer?: string;
  /** Sign with this key instead (a stranger's), under the signer's serial. */
  key?: KeyObject;
  /** What the resource claims. */
  mchid?: string;
  appid?: string;
  amount?: number;
  outTradeNo?: string;
}

export class BasicNotificationForge {
  private readonly cfg;
  constructor(sandboxDir: string) {
    this.cfg = loadSandboxConfig(sandboxDir);
  }

  resource(order: Order, o: BasicForgeOptions = {}) {
    const sub = order.sub_orders[0]!;
    const amount = o.amount ?? sub.amount;
    return {
      appid: o.appid ?? this.cfg.appid,
      mchid: o.mchid ?? sub.mchid,
      out_trade_no: o.outTradeNo ?? sub.out_trade_no,
      transaction_id: '4200' + String(Date.now()) + String(Math.floor(Math.random() * 1e6)).padStart(6, '0'),
      trade_type: 'NATIVE', trade_state: 'SUCCESS', trade_state_desc: '支付成功', bank_type: 'OTHERS',
      attach: order.combine_out_trade_no, success_time: formatBeijing(Date.now()), payer: { openid: 'oTest' },
      amount: { total: amount, payer_total: amount, currency: 'CNY', payer_currency: 'CNY' },
    };
  }

  build(order: Order, o: BasicForgeOptions = {}): { headers: Record<string, string>; body: string } {
    const m = this.cfg.keys.get(o.signer ?? order.sub_orders[0]!.mchid);
    if (!m) throw new Error(`no WeChat Pay keys for ${o.signer ?? order.sub_orders[0]!.mchid}`);
    const envelope = {
      id: o.id ?? randomUUID(), create_time: formatBeijing(Date.now()), resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
      resource: { original_type: 'transaction', ...encryptResource(JSON.stringify(this.resource(order, o)), m.apiV3Key, 'transaction') },
    };
    const body = JSON.stringify(envelope);
    const k = defaultKey(m);
    const headers = signBody(o.key ?? k.key, k.serial, body) as unknown as Record<string, string>;
    return { headers: { 'Content-Type': 'application/json', ...headers }, body };
  }
}
