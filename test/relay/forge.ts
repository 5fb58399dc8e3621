/** Builds notifications exactly as WeChat Pay (the sandbox) would, with WeChat's key from DIR/sandbox, plus deliberate defects. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { apiV3Key, encryptResource } from '../../shared/wechatpay/aead';
import { signBody, PROBE_PREFIX } from '../../shared/wechatpay/sign';
import type { Order } from '../../shared/contracts/relay-api';

export interface ForgeOptions {
  id?: string;
  nowMs?: number;
  /** signed timestamp offset from now, ms */
  skewMs?: number;
  serial?: string;
  key?: KeyObject;
  probe?: boolean;
  tamper?: boolean;
  amounts?: number[];
  mchids?: string[];
  /** combine_appid to claim (default: ours) */
  appid?: string;
}

export class NotificationForge {
  readonly key: KeyObject;
  readonly serial: string;
  readonly v3: KeyObject;
  readonly mchid: string;
  readonly appid: string;
  constructor(dir: string) {
    const cfg = JSON.parse(readFileSync(join(dir, 'sandbox', 'sandbox.json'), 'utf8'));
    this.key = createPrivateKey(readFileSync(join(dir, 'sandbox', cfg.public_key_file)));
    this.serial = cfg.public_key_id;
    this.v3 = apiV3Key(cfg.apiv3_key);
    this.mchid = cfg.mchid;
    this.appid = cfg.appid;
  }

  resource(order: Order, o: ForgeOptions = {}) {
    const t = new Date(o.nowMs ?? Date.now()).toISOString().replace(/\.\d+Z$/, '+00:00');
    return {
      combine_appid: o.appid ?? this.appid,
      combine_mchid: this.mchid,
      combine_out_trade_no: order.combine_out_trade_no,
      combine_payer_info: { openid: 'oTest' },
      sub_orders: order.sub_orders.map((s, i) => ({
        mchid: o.mchids?.[i] ?? s.mchid, trade_type: 'NATIVE', trade_state: 'SUCCESS', bank_type: 'OTHERS', attach: order.combine_out_trade_no,
        success_time: t, transaction_id: '42000' + String(Date.now()) + String(i).padStart(3, '0'), out_trade_no: s.out_trade_no,
        amount: { total_amount: o.amounts?.[i] ?? s.amount, currency: 'CNY', payer_amount: o.amounts?.[i] ?? s.amount, payer_currency: 'CNY' },
      })),
    };
  }

  build(order: Order, o: ForgeOptions = {}): { headers: Record<string, string>; body: string } {
    const envelope = {
      id: o.id ?? randomUUID(), create_time: '2026-01-01T00:00:00+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
      resource: { original_type: 'transaction', ...encryptResource(JSON.stringify(this.resource(order, o)), this.v3, 'transaction') },
    };
    let body = JSON.stringify(envelope);
    const h = signBody(o.key ?? this.key, o.serial ?? this.serial, body, o.nowMs ?? (o.skewMs !== undefined ? Date.now() + o.skewMs : undefined));
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...h };
    if (o.probe) headers['Wechatpay-Signature'] = PROBE_PREFIX + h['Wechatpay-Signature'].slice(0, 40);
    if (o.tamper) body = body.replace('TRANSACTION.SUCCESS', 'TRANSACTION.SUCCESS ');
    return { headers, body };
  }

  static strangerKey(): KeyObject {
    return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  }
}

export async function post(url: string, n: { headers: Record<string, string>; body: string }) {
  const res = await fetch(url + '/wechatpay/notify', { method: 'POST', headers: n.headers, body: n.body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
