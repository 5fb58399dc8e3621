/**
 * The refunds repository (repo-refunds.ts) on both engines: the same assertions for SQLite and
 * PostgreSQL. On PostgreSQL the races also run across two relays (two stores, two pools, one
 * database): what one relay records, claims or applies, the other sees and never doubles.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Order } from '../../shared/contracts/relay-api';
import { RelayError } from '../../shared/relay/errors';
import { createLogger } from '../../shared/relay/log';
import { newOutRefundNo, RefundService } from '../../shared/relay/refunds';
import type { PayClients } from '../../shared/relay/upstream';
import type { RefundResult } from '../../shared/wechatpay/models';
import type { NewRefund, RefundDecisionInput, RefundRow } from '../../shared/relay/repo-refunds';
import type { RelayStore } from '../../shared/relay/repo-types';
import type { SqliteStore } from '../../shared/relay/sqlite/index';
import type { PgStore } from '../../shared/relay/pg/index';
import { ENGINES, freshPgDatabase, openPgRelay, stopEngines } from '../helpers/stores';

/** A store and, on PostgreSQL, a second relay on the same database (SQLite: the same store). */
interface Ctx {
  name: string;
  a: RelayStore;
  b: RelayStore;
  /** Plain SQL on the database ($1… parameters, in order). */
  sql(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

async function open(name: 'sqlite' | 'postgresql'): Promise<Ctx> {
  if (name === 'sqlite') {
    const opened = await ENGINES.find((e) => e.name === 'sqlite')!.open();
    const db = (opened.store as SqliteStore).db;
    return {
      name, a: opened.store, b: opened.store, close: opened.close,
      sql: async (text, params = []) => {
        const st = db.prepare(text.replace(/\$\d+/g, '?'));
        return st.reader ? (st.all(...params) as Record<string, unknown>[]) : (st.run(...params), []);
      },
    };
  }
  const url = await freshPgDatabase();
  const a = await openPgRelay(url, { applicationName: 'relay-a' });
  const b = await openPgRelay(url, { applicationName: 'relay-b' });
  return {
    name, a, b,
    sql: async (text, params = []) => (await (a as PgStore).pool.query(text, params)).rows,
    close: async () => {
      await a.close();
      await b.close();
    },
  };
}

const T0 = Date.UTC(2026, 0, 5, 16, 0, 0); // a Beijing day's start
let seq = 0;

/** A paid order (SUCCESS) with one sub-order per amount, by plain SQL. */
async function paidOrder(c: Ctx, amounts: number[], terminal = 'till-1'): Promise<{ no: string; subs: { out_trade_no: string; mchid: string; amount: number }[] }> {
  const no = `C${T0}${++seq}${c.name[0]}`;
  const total = amounts.reduce((s, a) => s + a, 0);
  const at = new Date(T0).toISOString();
  await c.sql(`INSERT INTO orders (combine_out_trade_no, state, total_amount, created_at, created_ms, expires_at, expires_ms, paid_at, paid_ms, updated_ms,
    terminal, creation, request_hash, request_json, watch, next_check_ms) VALUES ($1, 'SUCCESS', $2, $3, $4, $5, $6, $7, $8, $9, $10, 'CREATED', 'h', '', 0, 0)`,
  [no, total, at, T0, at, T0 + 600_000, at, T0, T0, terminal]);
  const subs = amounts.map((amount, i) => ({ out_trade_no: `${no}S${i}`, mchid: `19000000${i}`, amount }));
  for (const [i, s] of subs.entries()) {
    await c.sql(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, state) VALUES ($1, $2, $3, $4, 'x', $5, 'SUCCESS')`,
      [s.out_trade_no, no, i, s.mchid, s.amount]);
  }
  return { no, subs };
}

class Exceeds extends RelayError {
  constructor(left: number) {
    super(409, 'REFUND_EXCEEDS_PAID', `only ${left} left`);
  }
}

/** The service's decision in small: refuse what the sub-order has no longer, else the row. */
interface DecideOptions {
  outTradeNo: string;
  amount: number;
  terminal?: string;
  key?: string | null;
  now?: number;
  /** The inputs the decision saw. */
  seen?: RefundDecisionInput[];
}

function decider(o: DecideOptions) {
  return (d: RefundDecisionInput): NewRefund => {
    o.seen?.push(d);
    if (!d.order) throw new RelayError(404, 'ORDER_NOT_FOUND', 'no order');
    const sub = d.subs.find((s) => s.out_trade_no === o.outTradeNo);
    if (!sub) throw new RelayError(400, 'INVALID_FIELD', 'not a sub-order');
    if (o.amount > sub.amount - d.taken) throw new Exceeds(sub.amount - d.taken);
    const now = o.now ?? T0 + 1000;
    return {
      row: {
        out_refund_no: newOutRefundNo(now), combine_out_trade_no: d.order.combine_out_trade_no, out_trade_no: sub.out_trade_no, mchid: sub.mchid,
        amount: o.amount, total: sub.amount, reason: null, status: 'PENDING', created_at: new Date(now).toISOString(), created_ms: now,
        terminal: o.terminal ?? 'boss', idempotency_key: o.key ?? null, request_hash: 'hash', next_check_ms: now + 60_000,
      },
    };
  };
}
/** decider for one sub-order. */
function decideFor(outTradeNo: string, o: Omit<DecideOptions, 'outTradeNo'>) {
  return decider({ ...o, outTradeNo });
}

async function cursorOf(c: Ctx, no: string): Promise<{ version: number; cursor: number }> {
  const r = (await c.sql('SELECT version, cursor FROM orders WHERE combine_out_trade_no = $1', [no]))[0]!;
  return { version: Number(r.version), cursor: Number(r.cursor) };
}

const engines = ENGINES.map((e) => e.name);

afterAll(() => stopEngines(), 30_000);

describe.each(engines)('refunds repository on %s', (engine) => {
  let c: Ctx;
  const ctx = async () => (c = await open(engine));
  afterEach(async () => c?.close());

  it('records within what was paid (order stamped, change pushed with the refund), refuses beyond it with nothing written', async () => {
    await ctx();
    const order = await paidOrder(c, [1000, 500]);
    const sub = order.subs[0]!;
    const pushed: Order[] = [];
    c.a.feed.onChange((ch) => {
      if (ch.order.combine_out_trade_no === order.no) pushed.push(ch.order);
    });
    const before = await cursorOf(c, order.no);
    const seen: RefundDecisionInput[] = [];
    const r = await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null },
      decideFor(sub.out_trade_no, { amount: 600, seen }));
    expect(r.kind).toBe('recorded');
    expect(r.row).toMatchObject({ combine_out_trade_no: order.no, out_trade_no: sub.out_trade_no, amount: 600, total: 1000, status: 'PENDING', watch: 1, check_attempts: 0 });
    expect(typeof r.row.created_ms).toBe('number');
    expect(seen[0]).toMatchObject({ taken: 0, order: { combine_out_trade_no: order.no, state: 'SUCCESS' } });
    expect(seen[0]!.subs.map((s) => s.out_trade_no)).toEqual(order.subs.map((s) => s.out_trade_no));
    const after = await cursorOf(c, order.no);
    expect(after.version).toBe(before.version + 1);
    expect(after.cursor).toBeGreaterThan(before.cursor);
    await c.a.feed.catchUp();
    await expect.poll(() => pushed.at(-1)?.refunds?.length).toBe(1);
    expect(pushed.at(-1)!.sub_orders[0]).toMatchObject({ refundable_amount: 400, refunded_amount: 0 });

    // 500 more of the 400 left: refused, nothing written, no new cursor.
    seen.length = 0;
    await expect(c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null },
      decideFor(sub.out_trade_no, { amount: 500, seen }))).rejects.toMatchObject({ code: 'REFUND_EXCEEDS_PAID' });
    expect(seen[0]!.taken).toBe(600);
    expect(await c.a.refunds.ofOrder(order.no)).toHaveLength(1);
    expect(await cursorOf(c, order.no)).toEqual(after);
    // Exactly what is left: taken.
    expect((await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null },
      decideFor(sub.out_trade_no, { amount: 400, now: T0 + 2000 }))).kind).toBe('recorded');
    // An unknown order reaches the decision as undefined.
    seen.length = 0;
    await expect(c.a.refunds.record({ orderNo: 'C-NOT-HERE', outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null },
      decideFor(sub.out_trade_no, { amount: 1, seen }))).rejects.toMatchObject({ code: 'ORDER_NOT_FOUND' });
    expect(seen[0]).toMatchObject({ order: undefined, subs: [], taken: 0 });
    // The order object carries its refunds (SQLite: the decorator; PostgreSQL: PgOrders).
    const o = (await c.b.orders.get(order.no))!;
    expect(o.refunds!.map((x) => x.amount)).toEqual([600, 400]);
    expect(o.sub_orders.map((s) => s.refundable_amount)).toEqual([0, 500]);
  });

  it('10 concurrent records of 40 % each (two relays on PostgreSQL): exactly 2 stored, never more than paid', async () => {
    await ctx();
    const order = await paidOrder(c, [1000, 500]);
    const sub = order.subs[0]!;
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? c.b : c.a).refunds.record(
      { orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 400 }))));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(2);
    expect(refused).toHaveLength(8);
    expect(refused.every((r) => (r.reason as RelayError).code === 'REFUND_EXCEEDS_PAID')).toBe(true);
    const stored = await c.a.refunds.ofOrder(order.no);
    expect(stored.map((r) => r.amount)).toEqual([400, 400]);
    // Each stored refund stamped the order once: two new versions.
    expect((await cursorOf(c, order.no)).version).toBe(3);
  });

  it('an Idempotency-Key names one refund: the second record (also from the other relay, also at once) gets the existing one', async () => {
    await ctx();
    const order = await paidOrder(c, [1000]);
    const sub = order.subs[0]!;
    const input = { orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: 'k-1' };
    const first = await c.a.refunds.record(input, decideFor(sub.out_trade_no, { amount: 300, key: 'k-1' }));
    expect(first.kind).toBe('recorded');
    const seen: RefundDecisionInput[] = [];
    const again = await c.b.refunds.record(input, decideFor(sub.out_trade_no, { amount: 300, key: 'k-1', seen }));
    expect(again).toEqual({ kind: 'existing', row: first.row });
    expect(seen).toHaveLength(0);
    expect(await c.b.refunds.byIdempotencyKey('boss', 'k-1')).toEqual(first.row);
    expect(await c.a.refunds.byIdempotencyKey('other-terminal', 'k-1')).toBeUndefined();
    // Two at once with a new key: one refund, both answers name it.
    const both = await Promise.all([c.a, c.b].map((s) => s.refunds.record({ ...input, idempotencyKey: 'k-2' }, decideFor(sub.out_trade_no, { amount: 100, key: 'k-2' }))));
    expect(both.map((r) => r.kind).sort()).toEqual(['existing', 'recorded']);
    expect(both[0]!.row.out_refund_no).toBe(both[1]!.row.out_refund_no);
    expect(await c.a.refunds.ofOrder(order.no)).toHaveLength(2);
  });

  it('update moves forward only (RANK), stamps the order on a change only, and unwatches final ones', async () => {
    await ctx();
    const order = await paidOrder(c, [1000]);
    const sub = order.subs[0]!;
    const { row } = await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 300 }));
    const v0 = (await cursorOf(c, order.no)).version;
    expect(await c.a.refunds.update(row.out_refund_no, { status: 'PROCESSING', refund_id: 'R1' })).toBe(true);
    expect(await c.b.refunds.update(row.out_refund_no, { status: 'PROCESSING', refund_id: 'R2' })).toBe(false);
    expect(await c.b.refunds.update(row.out_refund_no, { status: 'ABNORMAL' })).toBe(true);
    expect(await c.a.refunds.get(row.out_refund_no)).toMatchObject({ status: 'ABNORMAL', refund_id: 'R1', watch: 0 });
    expect(await c.a.refunds.update(row.out_refund_no, { status: 'SUCCESS', success_time: '2026-01-06T00:00:01+08:00' })).toBe(true);
    expect(await c.a.refunds.update(row.out_refund_no, { status: 'PROCESSING' })).toBe(false);
    expect(await c.a.refunds.update(row.out_refund_no, { status: 'CLOSED' })).toBe(false);
    expect(await c.a.refunds.update('R-NOT-HERE', { status: 'SUCCESS' })).toBe(false);
    expect(await c.a.refunds.get(row.out_refund_no)).toMatchObject({ status: 'SUCCESS', refund_id: 'R1', success_time: '2026-01-06T00:00:01+08:00', watch: 0 });
    expect((await cursorOf(c, order.no)).version).toBe(v0 + 3);
    // Concurrent moves to the same status from both relays: one wins.
    const r2 = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 100 }))).row;
    const wins = await Promise.all([c.a, c.b, c.a, c.b].map((s) => s.refunds.update(r2.out_refund_no, { status: 'FAILED', error_code: 'X', error_message: 'no' })));
    expect(wins.filter(Boolean)).toHaveLength(1);
    // FAILED: kept, but neither shown nor counted.
    expect((await c.a.refunds.ofOrder(order.no)).map((r) => r.out_refund_no)).toEqual([row.out_refund_no]);
    expect(await c.a.refunds.get(r2.out_refund_no)).toMatchObject({ status: 'FAILED', error_code: 'X', watch: 0 });
    // note and schedule: no status change, no stamp.
    const v1 = (await cursorOf(c, order.no)).version;
    const r3 = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 600 }))).row;
    await c.a.refunds.note(r3.out_refund_no, 'TIMEOUT', 'x'.repeat(600));
    await c.a.refunds.schedule(r3.out_refund_no, 42);
    expect(await c.a.refunds.get(r3.out_refund_no)).toMatchObject({ status: 'PENDING', error_code: 'TIMEOUT', next_check_ms: 42, check_attempts: 1 });
    expect((await c.a.refunds.get(r3.out_refund_no))!.error_message).toHaveLength(500);
    expect((await cursorOf(c, order.no)).version).toBe(v1 + 1);
  });

  it('claimDue hands each due refund to one caller (two relays at once) and leases it until it runs out', async () => {
    await ctx();
    const order = await paidOrder(c, [1000, 1000]);
    const rows: RefundRow[] = [];
    for (const [i, amount] of [100, 200, 300, 400, 500].entries()) {
      const sub = order.subs[i % 2]!;
      rows.push((await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount }))).row);
    }
    const now = T0 + 10_000_000;
    for (const [i, r] of rows.entries()) await c.a.refunds.schedule(r.out_refund_no, now - 1000 + i);
    // Not watched: never claimed.
    await c.a.refunds.update(rows[4]!.out_refund_no, { status: 'SUCCESS' });
    // Not due yet.
    await c.a.refunds.schedule(rows[3]!.out_refund_no, now + 1);
    const lease = 30_000;
    // Oldest due first, and the limit holds.
    expect(await c.a.refunds.claimDue(now, 1, lease)).toEqual([rows[0]!.out_refund_no]);
    const claims = await Promise.all([c.a, c.b, c.a, c.b].map((s) => s.refunds.claimDue(now, 10, lease)));
    const all = [rows[0]!.out_refund_no, ...claims.flat()];
    expect([...all].sort()).toEqual(rows.slice(0, 3).map((r) => r.out_refund_no).sort());
    expect(new Set(all).size).toBe(all.length);
    // Leased: nobody gets them again until the lease runs out (the due one comes alone now).
    expect(await c.b.refunds.claimDue(now + 1, 10, lease)).toEqual([rows[3]!.out_refund_no]);
    expect(await c.a.refunds.claimDue(now + lease - 1, 10, lease)).toEqual([]);
    // The lease ran out: due again (to whoever asks), each once.
    const again = await c.b.refunds.claimDue(now + lease, 2, lease);
    expect(again).toHaveLength(2);
    const last = await c.a.refunds.claimDue(now + lease, 10, lease);
    expect([...again, ...last].sort()).toEqual(rows.slice(0, 3).map((r) => r.out_refund_no).sort());
    expect((await c.a.refunds.get(last[0]!))!.next_check_ms).toBe(now + 2 * lease);
  });

  it('resumePending: SQLite makes PENDING refunds due at once; PostgreSQL leaves them to their lease', async () => {
    await ctx();
    const order = await paidOrder(c, [1000]);
    const sub = order.subs[0]!;
    const pending = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 100 }))).row;
    const processing = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 100 }))).row;
    await c.a.refunds.update(processing.out_refund_no, { status: 'PROCESSING' });
    await c.a.refunds.resumePending();
    const due = await c.a.refunds.claimDue(T0, 10, 1000);
    expect(due).toEqual(engine === 'sqlite' ? [pending.out_refund_no] : []);
  });

  it('applyNotification: unknown, mismatch (id not kept), applied once (duplicates on either relay, also at once), late lower status kept as no change', async () => {
    await ctx();
    const order = await paidOrder(c, [1000]);
    const sub = order.subs[0]!;
    const row = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 700 }))).row;
    const ids = async () => (await c.sql('SELECT id, changed FROM notifications ORDER BY id')).map((r) => `${r.id}:${Number(r.changed)}`);
    const ok = () => null;
    const n = (id: string, status: 'SUCCESS' | 'PROCESSING' | 'ABNORMAL', outRefundNo = row.out_refund_no) =>
      ({ id, eventType: `REFUND.${status}`, outRefundNo, update: { status, refund_id: 'W1', success_time: '2026-01-06T00:00:00+08:00' } });

    expect(await c.a.refunds.applyNotification(n('n-unknown', 'SUCCESS', 'R-NOT-HERE'), ok)).toEqual({ kind: 'unknown' });
    const mismatch = await c.a.refunds.applyNotification(n('n-1', 'SUCCESS'), (r) => ({ alertKind: 'REFUND_MISMATCH', message: `amount of ${r.out_refund_no}` }));
    expect(mismatch).toMatchObject({ kind: 'mismatch', alertKind: 'REFUND_MISMATCH', message: `amount of ${row.out_refund_no}`, row: { out_refund_no: row.out_refund_no } });
    expect(await ids()).toEqual([]);
    expect((await c.a.refunds.get(row.out_refund_no))!.status).toBe('PENDING');

    const v0 = (await cursorOf(c, order.no)).version;
    // The same id (its mismatch was not kept) delivered at once to both relays, twice each.
    const results = await Promise.all([c.a, c.b, c.a, c.b].map((s) => s.refunds.applyNotification(n('n-1', 'SUCCESS'), ok)));
    expect(results.filter((r) => r.kind === 'applied')).toHaveLength(1);
    expect(results.filter((r) => r.kind === 'duplicate')).toHaveLength(3);
    expect(results.find((r) => r.kind === 'applied')).toMatchObject({ changed: true, row: { status: 'SUCCESS', refund_id: 'W1', watch: 0 } });
    expect((await cursorOf(c, order.no)).version).toBe(v0 + 1);
    // Later: a different id with an older status: kept (answered), nothing changes.
    expect(await c.b.refunds.applyNotification(n('n-2', 'PROCESSING'), ok)).toMatchObject({ kind: 'applied', changed: false, row: { status: 'SUCCESS' } });
    expect(await c.a.refunds.applyNotification(n('n-2', 'PROCESSING'), ok)).toEqual({ kind: 'duplicate' });
    expect(await ids()).toEqual(['n-1:1', 'n-2:0']);
    expect((await cursorOf(c, order.no)).version).toBe(v0 + 1);
    expect((await c.sql('SELECT combine_out_trade_no, event_type FROM notifications WHERE id = $1', ['n-1']))[0]).toEqual({ combine_out_trade_no: order.no, event_type: 'REFUND.SUCCESS' });
  });

  it('totals: SUCCESS refunds initiated in the range, per merchant, of one terminal\'s orders when asked', async () => {
    await ctx();
    const o1 = await paidOrder(c, [1000, 2000], 'till-1');
    const o2 = await paidOrder(c, [3000], 'till-2');
    const make = async (o: typeof o1, i: number, amount: number, now: number, status: 'SUCCESS' | 'PROCESSING' | 'CLOSED') => {
      const sub = o.subs[i]!;
      const r = (await c.a.refunds.record({ orderNo: o.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount, now }))).row;
      await c.a.refunds.update(r.out_refund_no, { status });
      return r;
    };
    await make(o1, 0, 100, T0 + 1, 'SUCCESS');
    await make(o1, 0, 200, T0 + 2, 'SUCCESS');
    await make(o1, 1, 300, T0 + 3, 'SUCCESS');
    await make(o1, 1, 400, T0 + 4, 'PROCESSING');
    await make(o1, 1, 500, T0 + 5, 'CLOSED');
    await make(o2, 0, 600, T0 + 6, 'SUCCESS'); // o2's sub 0 has the same mchid as o1's sub 0
    await make(o2, 0, 700, T0 + 86_400_000, 'SUCCESS'); // the next day
    const sorted = (x: { mchid: string }[]) => [...x].sort((p, q) => p.mchid.localeCompare(q.mchid));
    expect(sorted(await c.a.refunds.totals(T0, T0 + 86_400_000))).toEqual([
      { mchid: '190000000', count: 3, amount: 900 }, { mchid: '190000001', count: 1, amount: 300 },
    ]);
    expect(sorted(await c.b.refunds.totals(T0, T0 + 86_400_000, 'till-1'))).toEqual([
      { mchid: '190000000', count: 2, amount: 300 }, { mchid: '190000001', count: 1, amount: 300 },
    ]);
    expect(await c.a.refunds.totals(T0, T0 + 86_400_000, 'till-9')).toEqual([]);
    expect(await c.a.refunds.totals(T0 + 86_400_000, T0 + 2 * 86_400_000)).toEqual([{ mchid: '190000000', count: 1, amount: 700 }]);
  });

  it('list: one day\'s refunds, newest first, FAILED never, PROCESSING includes PENDING, limit', async () => {
    await ctx();
    const order = await paidOrder(c, [5000]);
    const sub = order.subs[0]!;
    const at = async (now: number, status?: 'SUCCESS' | 'PROCESSING' | 'FAILED') => {
      const r = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount: 100, now }))).row;
      if (status) await c.a.refunds.update(r.out_refund_no, { status });
      return r.out_refund_no;
    };
    const pending = await at(T0 + 10);
    const processing = await at(T0 + 20, 'PROCESSING');
    const success = await at(T0 + 30, 'SUCCESS');
    await at(T0 + 40, 'FAILED');
    await at(T0 - 1, 'SUCCESS'); // the day before
    await at(T0 + 86_400_000, 'SUCCESS'); // the day after
    const nos = async (status: string | null, limit = 100) => (await c.b.refunds.list(T0, status, limit)).map((r) => r.out_refund_no);
    expect(await nos(null)).toEqual([success, processing, pending]);
    expect(await nos('PROCESSING')).toEqual([processing, pending]);
    expect(await nos('SUCCESS')).toEqual([success]);
    expect(await nos('FAILED')).toEqual([]);
    expect(await nos(null, 2)).toEqual([success, processing]);
    expect((await c.a.refunds.list(T0, null, 1))[0]).toMatchObject({ created_ms: T0 + 30, amount: 100, status: 'SUCCESS' });
  });
}, 60_000);

/** WeChat Pay in small for the service: every create answers PROCESSING, every query SUCCESS; calls counted. */
function fakeClients(c: Ctx) {
  const creates: string[] = [];
  const queries: string[] = [];
  const result = (r: { out_refund_no: string; out_trade_no: string; amount: number; total: number }, status: 'PROCESSING' | 'SUCCESS'): RefundResult => ({
    refund_id: `W-${r.out_refund_no}`, out_refund_no: r.out_refund_no, transaction_id: 'T', out_trade_no: r.out_trade_no, status,
    amount: { total: r.total, refund: r.amount },
  });
  /** Creates wait for this (a slow WeChat Pay) when set. */
  let gate: Promise<void> | null = null;
  const client = {
    createRefund: async (b: { out_refund_no: string; out_trade_no: string; amount: { refund: number; total: number } }) => {
      creates.push(b.out_refund_no);
      await gate;
      return result({ out_refund_no: b.out_refund_no, out_trade_no: b.out_trade_no, amount: b.amount.refund, total: b.amount.total }, 'PROCESSING');
    },
    queryRefund: async (no: string) => {
      queries.push(no);
      return result((await c.a.refunds.get(no))!, 'SUCCESS');
    },
  };
  return {
    creates, queries, clients: { has: () => true, get: () => client } as unknown as PayClients,
    hold(): () => void {
      let release!: () => void;
      gate = new Promise<void>((r) => (release = r));
      return release;
    },
  };
}

function service(store: RelayStore, clients: PayClients, alerts: string[] = []) {
  return new RefundService({
    store, clients, log: createLogger('silent'), notifyUrl: () => 'http://127.0.0.1:9/wechatpay/notify', queryAfterSeconds: 1, tickMs: 10,
    alert: (kind) => { alerts.push(kind); },
  });
}

describe.each(engines)('refund service over the seam on %s (two relays on PostgreSQL)', (engine) => {
  let c: Ctx;
  const running: RefundService[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
    await c?.close();
  });

  it('10 creates of 40 % at once over both relays: 2 refunds, sent once each; the rest REFUND_EXCEEDS_PAID', async () => {
    c = await open(engine);
    const order = await paidOrder(c, [1000]);
    const sub = order.subs[0]!;
    const fake = fakeClients(c);
    const [sa, sb] = [service(c.a, fake.clients), service(c.b, fake.clients)];
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? sb : sa).create('boss', order.no, { out_trade_no: sub.out_trade_no, amount: 400 }, null)));
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(ok.map((r) => r.status)).toEqual(['PROCESSING', 'PROCESSING']);
    expect(results.filter((r) => r.status === 'rejected' && (r.reason as RelayError).code === 'REFUND_EXCEEDS_PAID')).toHaveLength(8);
    expect(fake.creates.sort()).toEqual(ok.map((r) => r.out_refund_no).sort());
    // Listed for today (Beijing day), from either relay.
    const today = Date.now() - ((Date.now() + 8 * 3_600_000) % 86_400_000);
    expect((await sb.list(today, 'PROCESSING', 10)).map((r) => r.out_refund_no).sort()).toEqual(ok.map((r) => r.out_refund_no).sort());
  });

  it('an Idempotency-Key retried while the first request is still sending (on the other relay): no second create, the same refund', async () => {
    c = await open(engine);
    const order = await paidOrder(c, [1000]);
    const body = { out_trade_no: order.subs[0]!.out_trade_no, amount: 300 };
    const fake = fakeClients(c);
    const release = fake.hold();
    const sa = service(c.a, fake.clients);
    const first = sa.create('boss', order.no, body, 'key-1');
    await expect.poll(() => fake.creates.length).toBe(1);
    // The retry (SQLite: the same relay; PostgreSQL: the other one) finds the PENDING refund.
    let found!: () => void;
    const foundIt = new Promise<void>((r) => (found = r));
    const refunds = Object.create(c.b.refunds) as RelayStore['refunds'];
    refunds.byIdempotencyKey = async (t, k) => {
      const r = await c.b.refunds.byIdempotencyKey(t, k);
      if (r) found();
      return r;
    };
    const retrying = engine === 'sqlite' ? sa : service({ ...c.b, engine: c.b.engine, feed: c.b.feed, audit: c.b.audit, refunds } as RelayStore, fake.clients);
    const second = retrying.create('boss', order.no, body, 'key-1');
    // PostgreSQL: release the first create only once the retry waits for it (one more loop turn).
    if (engine === 'postgresql') await foundIt;
    await new Promise((r) => setImmediate(r));
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(b.out_refund_no).toBe(a.out_refund_no);
    expect([a.status, b.status]).toEqual(['PROCESSING', 'PROCESSING']);
    expect(fake.creates).toEqual([a.out_refund_no]);
  });

  it('the followers of both relays claim each due refund once: every PROCESSING refund queried once, then SUCCESS', async () => {
    c = await open(engine);
    const order = await paidOrder(c, [1000, 1000]);
    const nos: string[] = [];
    for (const [i, amount] of [100, 200, 300, 400].entries()) {
      const sub = order.subs[i % 2]!;
      const r = (await c.a.refunds.record({ orderNo: order.no, outTradeNo: sub.out_trade_no, terminal: 'boss', idempotencyKey: null }, decideFor(sub.out_trade_no, { amount }))).row;
      await c.a.refunds.update(r.out_refund_no, { status: 'PROCESSING', refund_id: `W-${r.out_refund_no}` });
      await c.a.refunds.schedule(r.out_refund_no, 0);
      nos.push(r.out_refund_no);
    }
    const fake = fakeClients(c);
    running.push(service(c.a, fake.clients), service(c.b, fake.clients));
    await Promise.all(running.map((s) => s.start()));
    await expect.poll(async () => (await c.a.refunds.ofOrder(order.no)).every((r) => r.status === 'SUCCESS'), { timeout: 10_000 }).toBe(true);
    expect(fake.queries.sort()).toEqual([...nos].sort());
    const o = (await c.b.orders.get(order.no))!;
    expect(o.sub_orders.map((s) => s.refunded_amount)).toEqual([400, 600]);
  });
}, 60_000);
