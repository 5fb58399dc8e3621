/** Trade bills match the orders paid: per sub-merchant, real layout, hash, gzip, readiness, expiry. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { parseTradeBillText } from '../../shared/wechatpay/bill-parser';
import { beijingDate } from '../../shared/wechatpay/time';
import { combineRequest, sandboxPost, send, setup, type Env } from './helpers';

let env: Env;
let day: string;
const paid: { combine: string; subs: { mchid: string; out_trade_no: string; amount: number; transaction_id: string }[] }[] = [];
const unpaid: string[] = [];

async function shiftClock(seconds: number) {
  expect((await sandboxPost(env, '/sandbox/control/clock', { offset_seconds: seconds })).status).toBe(200);
}

/** Apply, then download; returns the bill text (hash checked) and the raw answers. */
async function fetchBill(query: string, as?: string) {
  const apply = await send(env, 'GET', query ? `/v3/bill/tradebill?${query}` : '/v3/bill/tradebill', undefined, { as });
  if (apply.status !== 200) return { apply };
  await env.verifier.verify(Object.fromEntries(apply.headers.entries()), apply.raw);
  const u = new URL(apply.json.download_url);
  const dl = await send(env, 'GET', u.pathname + u.search, undefined, { as });
  const bytes = query.includes('tar_type=GZIP') ? gunzipSync(dl.raw) : dl.raw;
  return { apply, dl, bytes, text: bytes.toString('utf8') };
}

beforeAll(async () => {
  env = await setup();
  day = beijingDate(Date.now());
  const subs = env.creds.subMerchants;
  for (let i = 0; i < 3; i++) {
    const req = combineRequest(env);
    req.sub_orders[0]!.amount.total_amount = 1000 + i * 111;
    if (i === 2) req.sub_orders[1]!.mchid = subs[2]!.mchid;
    const c = await send(env, 'POST', '/v3/combine-transactions/native', req);
    const p = await sandboxPost(env, '/sandbox/pay', { code_url: c.json.code_url, notify: false });
    paid.push({
      combine: req.combine_out_trade_no,
      subs: req.sub_orders.map((s, k) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no, amount: s.amount.total_amount, transaction_id: p.json.sub_orders[k].transaction_id })),
    });
  }
  const open = combineRequest(env);
  await send(env, 'POST', '/v3/combine-transactions/native', open);
  unpaid.push(...open.sub_orders.map((s) => s.out_trade_no));
});
afterAll(() => env.close());

describe('trade bills', () => {
  it("today's bill is not ready yet: STATEMENT_CREATING", async () => {
    const { apply } = await fetchBill(`bill_date=${day}`, env.creds.subMerchants[0]!.mchid);
    expect([apply.status, apply.json.code]).toEqual([400, 'STATEMENT_CREATING']);
  });

  it('refuses bad queries with PARAM_ERROR', async () => {
    for (const q of ['', 'bill_date=2026/01/01', 'bill_date=2026-02-30', `bill_date=${day}&bill_type=EVERYTHING`, `bill_date=${day}&tar_type=ZIP`, `bill_date=${day}&sub_mchid=1234`]) {
      const { apply } = await fetchBill(q);
      expect([apply.status, apply.json.code], q).toEqual([400, 'PARAM_ERROR']);
    }
  });

  describe('the next day after 10:00', () => {
    beforeAll(() => shiftClock(36 * 3600));

    it('each sub-merchant bill lists exactly its paid sub-orders, amounts in yuan, hash matches', async () => {
      for (const m of env.creds.subMerchants.slice(0, 3)) {
        const { apply, dl, bytes, text } = await fetchBill(`bill_date=${day}`, m.mchid);
        expect(apply.status).toBe(200);
        expect(apply.json.hash_type).toBe('SHA1');
        expect(createHash('sha1').update(bytes!).digest('hex')).toBe(apply.json.hash_value);
        expect(dl!.headers.get('wechatpay-signature')).toBeNull(); // downloads are unsigned
        const expected = paid.flatMap((o) => o.subs).filter((s) => s.mchid === m.mchid);
        const bill = parseTradeBillText(text!);
        expect(bill.billType).toBe('ALL');
        expect(bill.records.map((r) => r.out_trade_no).sort()).toEqual(expected.map((s) => s.out_trade_no).sort());
        for (const r of bill.records) {
          const s = expected.find((e) => e.out_trade_no === r.out_trade_no)!;
          expect(r).toMatchObject({ mchid: m.mchid, transaction_id: s.transaction_id, total_fee: s.amount, settlement_total_fee: s.amount, appid: env.creds.appid, trade_state: 'SUCCESS', trade_type: 'NATIVE', sub_mchid: '0' });
          expect(r.trade_time.startsWith(day)).toBe(true);
          expect(paid.some((o) => o.combine === r.attach)).toBe(true);
        }
        const sum = expected.reduce((a, s) => a + s.amount, 0);
        expect(bill.summary).toMatchObject({ total_count: expected.length, total_fee: sum, settlement_total_fee: sum, refund_fee: 0 });
        // Raw layout: backtick-prefixed values, CRLF lines, header without backticks.
        const lines = text!.split('\r\n');
        expect(lines[0]!.startsWith('交易时间,公众账号ID,商户号')).toBe(true);
        expect(lines[1]!.startsWith('`' + day)).toBe(true);
        expect(lines[1]!.split(',`')).toHaveLength(27);
        expect(text).toContain(`\`${(expected[0]!.amount / 100).toFixed(2)},`);
      }
    });

    it('never lists unpaid orders; the combine mchid alone and days without trades answer NO_STATEMENT_EXIST', async () => {
      const { text } = await fetchBill(`bill_date=${day}`, env.creds.subMerchants[0]!.mchid);
      for (const no of unpaid) expect(text).not.toContain(no);
      expect((await fetchBill(`bill_date=${day}`)).apply.json.code).toBe('NO_STATEMENT_EXIST');
      const before = beijingDate(Date.now() - 86_400_000);
      const { apply } = await fetchBill(`bill_date=${before}`, env.creds.subMerchants[0]!.mchid);
      expect([apply.status, apply.json.code]).toEqual([400, 'NO_STATEMENT_EXIST']);
    });

    it('serves gzip when asked (hash over the uncompressed file) and the SUCCESS layout', async () => {
      const m = env.creds.subMerchants[1]!.mchid;
      const plain = await fetchBill(`bill_date=${day}`, m);
      const gz = await fetchBill(`bill_date=${day}&tar_type=GZIP`, m);
      expect(gz.dl!.raw.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      expect(gz.text).toBe(plain.text);
      expect(gz.apply.json.hash_value).toBe(plain.apply.json.hash_value);
      const succ = await fetchBill(`bill_date=${day}&bill_type=SUCCESS`, m);
      const bill = parseTradeBillText(succ.text!);
      expect(bill.billType).toBe('SUCCESS');
      expect(succ.text!.split('\r\n')[1]!.split(',`')).toHaveLength(20);
    });

    it('download needs a signed request and stops working after its validity', async () => {
      const as = env.creds.subMerchants[0]!.mchid;
      const apply = await send(env, 'GET', `/v3/bill/tradebill?bill_date=${day}`, undefined, { as });
      const u = new URL(apply.json.download_url);
      const unsigned = await send(env, 'GET', u.pathname + u.search, undefined, { authorization: null });
      expect(unsigned.status).toBe(401);
      // Another merchant cannot download this merchant's bill.
      const other = await send(env, 'GET', u.pathname + u.search, undefined, { as: env.creds.subMerchants[1]!.mchid });
      expect([other.status, other.json.code]).toEqual([400, 'INVALID_REQUEST']);
      await shiftClock(36 * 3600 + 301);
      const late = await send(env, 'GET', u.pathname + u.search, undefined, { as });
      expect([late.status, late.json.code]).toEqual([400, 'INVALID_REQUEST']);
      expect(late.json.message).toMatch(/过期|expired/);
      await shiftClock(36 * 3600);
    });

    it('injected mismatches show up: changed amount, dropped row, extra row', async () => {
      const m = env.creds.subMerchants[0]!.mchid;
      const [a, b] = paid.map((o) => o.subs.find((s) => s.mchid === m)!);
      expect((await sandboxPost(env, '/sandbox/control/bill-adjust', { out_trade_no: a!.out_trade_no, amount: a!.amount + 1 })).status).toBe(200);
      expect((await sandboxPost(env, '/sandbox/control/bill-adjust', { out_trade_no: b!.out_trade_no, drop: true })).status).toBe(200);
      expect((await sandboxPost(env, '/sandbox/control/bill-adjust', { extra: { mchid: m, out_trade_no: 'GHOST000001', amount: 999, bill_date: day } })).status).toBe(200);
      expect((await sandboxPost(env, '/sandbox/control/bill-adjust', { out_trade_no: 'NOSUCHSUB01', drop: true })).status).toBe(404);
      const bill = parseTradeBillText((await fetchBill(`bill_date=${day}`, m)).text!);
      const byNo = new Map(bill.records.map((r) => [r.out_trade_no, r]));
      expect(byNo.get(a!.out_trade_no)!.total_fee).toBe(a!.amount + 1);
      expect(byNo.has(b!.out_trade_no)).toBe(false);
      expect(byNo.get('GHOST000001')!.total_fee).toBe(999);
    });
  });
});
