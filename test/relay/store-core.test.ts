/**
 * The core repositories of the store seam (repo-types.ts), ONE suite on both engines: orders,
 * payment notifications (exactly once), claims, list and number search, takings, alerts,
 * terminals and the change feed. Then what only PostgreSQL has: several relays on one database.
 */
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { Change, NewOrder, OrderRow, PaymentNotification, RelayStore, SubOrderRow, Transition } from '../../shared/relay/repo-types';
import { subKey } from '../../shared/relay/order-view';
import type { OrderState } from '../../shared/contracts/relay-api';
import { ENGINES, freshPgDatabase, openPgRelay, stopEngines, type OpenedStore } from '../helpers/stores';
import type { PgStore } from '../../shared/relay/pg/index';

afterAll(async () => {
  await stopEngines();
}, 60_000);

let seq = 0;
const T0 = Date.UTC(2026, 0, 10, 4, 0, 0);

interface OrderSpec {
  no?: string;
  terminal?: string;
  key?: string | null;
  amounts?: number[];
  createdMs?: number;
  nextCheckMs?: number;
  watch?: number;
}

function newOrder(s: OrderSpec = {}): NewOrder {
  const no = s.no ?? `P${String(++seq).padStart(6, '0')}X${Math.random().toString(36).slice(2, 8)}`;
  const amounts = s.amounts ?? [100, 200];
  const created = s.createdMs ?? T0 + seq * 1000;
  return {
    row: {
      combine_out_trade_no: no, state: 'NOTPAY', total_amount: amounts.reduce((a, b) => a + b, 0), description: 'd',
      created_at: new Date(created).toISOString(), created_ms: created, expires_at: new Date(created + 600_000).toISOString(), expires_ms: created + 600_000,
      updated_ms: created, terminal: s.terminal ?? 'till-1', creation: 'PENDING', idempotency_key: s.key ?? null, request_hash: 'h', request_json: '{}',
      watch: s.watch ?? 1, next_check_ms: s.nextCheckMs ?? created + 60_000,
    },
    subs: amounts.map((amount, idx): SubOrderRow => ({ out_trade_no: `${no}S${idx}`, combine_out_trade_no: no, idx, mchid: `19000001${idx}`, description: `sub ${idx}`, amount, attach: null })),
  };
}

async function created(store: RelayStore, s: OrderSpec = {}): Promise<NewOrder> {
  const o = newOrder(s);
  expect(await store.orders.insert(o)).toBe(true);
  expect(await store.orders.markCreated(o.row.combine_out_trade_no, `weixin://pay/${o.row.combine_out_trade_no}`)).not.toBeNull();
  return o;
}

/** A payment notification for `o` (its sub-orders as WeChat reports them, `amounts` may differ). */
function payment(o: NewOrder, id: string, opts: { amounts?: number[]; state?: OrderState } = {}): PaymentNotification {
  const reported = o.subs.map((s, i) => ({ mchid: s.mchid, out_trade_no: s.out_trade_no, amount: opts.amounts?.[i] ?? s.amount }));
  const tr: Transition = {
    state: opts.state ?? 'SUCCESS',
    paidMs: T0 + 5000,
    transactionIds: new Map(o.subs.map((s, i) => [s.out_trade_no, `42000${id.replace(/\W/g, '')}${i}`])),
  };
  return {
    id, eventType: 'TRANSACTION.SUCCESS', no: o.row.combine_out_trade_no, key: subKey(reported), transition: tr,
    check: (row: OrderRow, subs: SubOrderRow[]) => (subKey(subs) === subKey(reported) ? null : { alertKind: 'AMOUNT_MISMATCH', message: `stored ${row.total_amount}` }),
  };
}

/** Collects the changes a store's feed delivers from now on (earlier ones delivered first). */
async function collect(store: RelayStore): Promise<Change[]> {
  await store.feed.catchUp();
  const seen: Change[] = [];
  store.feed.onChange((c) => seen.push(c));
  return seen;
}

/** Polls a condition (the feed of another relay is asynchronous); fails after `ms`. */
async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function strictlyIncreasing(xs: number[]): boolean {
  return xs.every((x, i) => i === 0 || x > xs[i - 1]!);
}

describe.each(ENGINES)('core repositories on $name', (engine) => {
  async function withStore(fn: (store: RelayStore) => Promise<void>): Promise<void> {
    const opened: OpenedStore = await engine.open();
    try {
      await fn(opened.store);
    } finally {
      await opened.close();
    }
  }

  it('inserts an order with its sub-orders once per (terminal, idempotency key)', () => withStore(async (store) => {
    const a = newOrder({ key: 'k-1' });
    expect(await store.orders.insert(a)).toBe(true);
    // Another request with the same key on the same terminal (maybe on another relay): refused.
    const b = newOrder({ key: 'k-1' });
    expect(await store.orders.insert(b)).toBe(false);
    expect(await store.orders.row(b.row.combine_out_trade_no)).toBeUndefined();
    expect(await store.orders.subRows(b.row.combine_out_trade_no)).toEqual([]);
    expect((await store.orders.byIdempotencyKey('till-1', 'k-1'))?.combine_out_trade_no).toBe(a.row.combine_out_trade_no);
    // The same key on another terminal, and orders without a key, are separate.
    expect(await store.orders.insert(newOrder({ key: 'k-1', terminal: 'till-2' }))).toBe(true);
    expect(await store.orders.insert(newOrder())).toBe(true);
    expect(await store.orders.insert(newOrder())).toBe(true);

    const row = (await store.orders.row(a.row.combine_out_trade_no))!;
    expect(row).toMatchObject({ state: 'NOTPAY', creation: 'PENDING', kind: 'combine', version: 1, cursor: 0, total_amount: 300, created_ms: a.row.created_ms, next_check_ms: a.row.next_check_ms });
    expect(typeof row.created_ms).toBe('number');
    expect(await store.orders.subRows(a.row.combine_out_trade_no)).toEqual(a.subs);
    expect(await store.orders.subByNo(a.subs[1]!.out_trade_no)).toEqual(a.subs[1]);
    expect(await store.orders.subByNo('nope')).toBeUndefined();
    const order = (await store.orders.get(a.row.combine_out_trade_no))!;
    expect(order.sub_orders.map((s) => [s.out_trade_no, s.amount, s.state, s.transaction_id])).toEqual(a.subs.map((s) => [s.out_trade_no, s.amount, 'NOTPAY', null]));
    expect(order.refunds).toEqual([]);
  }));

  it('markCreated, transition and markFailed each give one change with a rising cursor, after the commit', () => withStore(async (store) => {
    const seen = await collect(store);
    const o = newOrder();
    const no = o.row.combine_out_trade_no;
    await store.orders.insert(o);
    const c0 = store.feed.cursor();

    const made = (await store.orders.markCreated(no, 'weixin://x', T0 + 1))!;
    expect(made).toMatchObject({ combine_out_trade_no: no, creation: 'CREATED', code_url: 'weixin://x', version: 2, state: 'NOTPAY' });
    await store.feed.catchUp();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.cursor).toBeGreaterThan(c0);
    expect(seen[0]!.order).toMatchObject({ combine_out_trade_no: no, creation: 'CREATED', version: 2 });
    expect(store.feed.cursor()).toBe(seen[0]!.cursor);

    const tr: Transition = { state: 'SUCCESS', paidMs: T0 + 2, transactionIds: new Map([[o.subs[0]!.out_trade_no, 'TX-A'], [o.subs[1]!.out_trade_no, null]]) };
    expect(await store.orders.transition(no, tr, T0 + 3)).toBe(true);
    // Final: neither the same nor another state applies again, and no change is fed.
    expect(await store.orders.transition(no, { state: 'SUCCESS' })).toBe(false);
    expect(await store.orders.transition(no, { state: 'CLOSED' })).toBe(false);
    await store.feed.catchUp();
    expect(seen).toHaveLength(2);
    expect(seen[1]!.cursor).toBeGreaterThan(seen[0]!.cursor);
    expect(seen[1]!.order).toMatchObject({ state: 'SUCCESS', paid_at: new Date(T0 + 2).toISOString(), version: 3 });
    expect(seen[1]!.order.sub_orders.map((s) => s.transaction_id)).toEqual(['TX-A', null]);
    const row = (await store.orders.row(no))!;
    expect(row).toMatchObject({ state: 'SUCCESS', paid_ms: T0 + 2, updated_ms: T0 + 3, cursor: seen[1]!.cursor, paid_via: 'query' });
    // A later transaction id is merged over the known ones (only from a non-final state: here a second order).
    // Each change read by the feed before the next is made (PostgreSQL's feed reads the table: two
    // changes of one order between two reads show once, at the latest).
    const o2 = await created(store);
    const no2 = o2.row.combine_out_trade_no;
    await store.feed.catchUp();
    expect(await store.orders.transition(no2, { state: 'USERPAYING', transactionIds: new Map([[o2.subs[0]!.out_trade_no, 'TX-B0']]) })).toBe(true);
    await store.feed.catchUp();
    expect(await store.orders.transition(no2, { state: 'SUCCESS', transactionIds: new Map([[o2.subs[1]!.out_trade_no, 'TX-B1']]) })).toBe(true);
    expect((await store.orders.get(no2))!.sub_orders.map((s) => s.transaction_id)).toEqual(['TX-B0', 'TX-B1']);
    expect((await store.orders.list({ q: 'TX-B1', limit: 10 })).map((x) => x.combine_out_trade_no)).toEqual([no2]);

    const f = newOrder();
    await store.orders.insert(f);
    const failed = (await store.orders.markFailed(f.row.combine_out_trade_no, 'PARAM_ERROR', 'x'.repeat(900), false))!;
    expect(failed).toMatchObject({ creation: 'FAILED', error_code: 'PARAM_ERROR', version: 2 });
    expect(failed.error_message).toHaveLength(500);
    expect((await store.orders.row(f.row.combine_out_trade_no))!.watch).toBe(0);
    expect(await store.orders.markCreated('no-such-order', 'weixin://y')).toBeNull();
    expect(await store.orders.markFailed('no-such-order', 'E', 'm', true)).toBeNull();
    expect(await store.orders.transition('no-such-order', { state: 'CLOSED' })).toBe(false);

    await store.feed.catchUp();
    const cursors = seen.map((c) => c.cursor);
    expect(strictlyIncreasing(cursors)).toBe(true);
    expect(seen.map((c) => c.order.combine_out_trade_no)).toEqual([no, no, no2, no2, no2, f.row.combine_out_trade_no]);
    expect(store.feed.cursor()).toBe(cursors.at(-1));
    // Replay: each order once with its latest state, oldest change first; null beyond the feed.
    const since = await store.feed.changedRowsSince(cursors[1]!, 10);
    expect(since!.map((r) => r.combine_out_trade_no)).toEqual([no2, f.row.combine_out_trade_no]);
    expect(await store.feed.changedRowsSince(cursors[1]!, 1)).toBeNull();
    expect(await store.feed.changedRowsSince(store.feed.cursor(), 10)).toEqual([]);
    expect(await store.feed.changedRowsSince(store.feed.cursor() + 1, 10)).toBeNull();
    // Snapshot: the open order and the recently changed ones, newest first.
    const snap = await store.feed.snapshotRows({ maxOpen: 10, recent: 10 }, T0 + 60_000);
    expect(snap.map((r) => r.combine_out_trade_no).sort()).toEqual([no, no2, f.row.combine_out_trade_no].sort());
  }));

  it('applyPayment: first applies, a duplicate id stops at the id, a later id on the final order keeps it unchanged', () => withStore(async (store) => {
    const o = await created(store);
    const no = o.row.combine_out_trade_no;
    const seen = await collect(store);
    expect(await store.notifications.applyPayment(payment(o, 'n-1'))).toEqual({ kind: 'applied', changed: true, state: 'SUCCESS' });
    expect(await store.notifications.applyPayment(payment(o, 'n-1'))).toEqual({ kind: 'duplicate' });
    expect(await store.notifications.applyPayment(payment(o, 'n-2', { state: 'CLOSED' }))).toEqual({ kind: 'applied', changed: false, state: 'CLOSED' });
    expect(await store.notifications.applyPayment(payment(o, 'n-2'))).toEqual({ kind: 'duplicate' });
    await store.feed.catchUp();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.order.state).toBe('SUCCESS');
    const row = (await store.orders.row(no))!;
    expect(row).toMatchObject({ state: 'SUCCESS', paid_ms: T0 + 5000, paid_via: 'notification' });
    expect((await store.orders.get(no))!.sub_orders.map((s) => s.transaction_id)).toEqual(['42000n10', '42000n11']);
  }));

  it('applyPayment: 50 concurrent duplicates change the order exactly once', () => withStore(async (store) => {
    const o = await created(store);
    const seen = await collect(store);
    const same = await Promise.all(Array.from({ length: 50 }, () => store.notifications.applyPayment(payment(o, 'dup-1'))));
    expect(same.filter((r) => r.kind === 'applied' && r.changed)).toHaveLength(1);
    expect(same.filter((r) => r.kind === 'duplicate')).toHaveLength(49);
    // 50 different ids of the same payment (WeChat's resends): all kept, one change.
    const o2 = await created(store);
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => store.notifications.applyPayment(payment(o2, `re-${i}`))));
    expect(many.filter((r) => r.kind === 'applied' && r.changed)).toHaveLength(1);
    expect(many.filter((r) => r.kind === 'applied' && !r.changed)).toHaveLength(49);
    await store.feed.catchUp();
    // (o2's creation may show only through its paid state on PostgreSQL: the feed reads the table.)
    expect(seen.filter((c) => c.order.state === 'SUCCESS').map((c) => c.order.combine_out_trade_no)).toEqual([o.row.combine_out_trade_no, o2.row.combine_out_trade_no]);
  }));

  it('applyPayment: a mismatch is refused and its id not kept; an unknown order likewise', () => withStore(async (store) => {
    const o = await created(store);
    const no = o.row.combine_out_trade_no;
    const seen = await collect(store);
    expect(await store.notifications.applyPayment(payment(o, 'm-1', { amounts: [100, 1] }))).toEqual({ kind: 'mismatch', alertKind: 'AMOUNT_MISMATCH', message: 'stored 300' });
    expect((await store.orders.row(no))!.state).toBe('NOTPAY');
    // The id was rolled back with the refusal: the genuine notification with that id applies.
    expect(await store.notifications.applyPayment(payment(o, 'm-1'))).toEqual({ kind: 'applied', changed: true, state: 'SUCCESS' });
    const ghost = newOrder();
    expect(await store.notifications.applyPayment(payment(ghost, 'u-1'))).toEqual({ kind: 'unknown' });
    // Not kept either: once the order exists, the same id applies.
    await store.orders.insert(ghost);
    expect(await store.notifications.applyPayment(payment(ghost, 'u-1'))).toMatchObject({ kind: 'applied', changed: true });
    await store.feed.catchUp();
    expect(seen.map((c) => c.order.combine_out_trade_no)).toEqual([no, ghost.row.combine_out_trade_no]);
  }));

  it('claimDue hands each due order to one of two concurrent claimers; the lease keeps it until it runs out', () => withStore(async (store) => {
    const now = T0 + 1_000_000;
    const due: string[] = [];
    for (let i = 0; i < 24; i++) {
      const o = newOrder({ nextCheckMs: now - 1000 + i });
      await store.orders.insert(o);
      due.push(o.row.combine_out_trade_no);
    }
    await store.orders.insert(newOrder({ nextCheckMs: now + 10_000_000 })); // not due yet
    await store.orders.insert(newOrder({ nextCheckMs: now - 5000, watch: 0 })); // not watched
    const [a, b] = await Promise.all([store.orders.claimDue(now, 16, 30_000), store.orders.claimDue(now, 16, 30_000)]);
    expect(a.filter((x) => b.includes(x))).toEqual([]);
    expect([...a, ...b].sort()).toEqual([...due].sort());
    // Oldest due first within one claim.
    const order = new Map(due.map((no, i) => [no, i]));
    expect(strictlyIncreasing(a.map((no) => order.get(no)!))).toBe(true);
    expect(await store.orders.claimDue(now, 100, 30_000)).toEqual([]);
    expect(await store.orders.claimDue(now + 29_999, 100, 30_000)).toEqual([]);
    // The claimer died without rescheduling: the lease runs out and the work is due again.
    expect((await store.orders.claimDue(now + 30_000, 100, 30_000)).sort()).toEqual([...due].sort());
    // schedule and unwatch take it out of the lease's hands.
    await store.orders.schedule(due[0]!, now + 100_000);
    await store.orders.unwatch(due[1]!);
    expect((await store.orders.row(due[0]!))!).toMatchObject({ next_check_ms: now + 100_000, check_attempts: 1 });
    const later = await store.orders.claimDue(now + 60_000, 100, 30_000);
    expect(later.sort()).toEqual(due.slice(2).sort());
    await store.orders.transition(due[2]!, { state: 'CLOSED' });
    await store.orders.unwatchFinal();
    expect((await store.orders.row(due[2]!))!.watch).toBe(0);
    expect((await store.orders.row(due[3]!))!.watch).toBe(1);
  }));

  it('list: filters, newest first, and number search by order, sub-order and transaction prefix', () => withStore(async (store) => {
    const day = Date.UTC(2026, 0, 20, -8); // a Beijing day starts 16:00 UTC the day before
    const a = await created(store, { no: 'SRCH10001', terminal: 'till-a', createdMs: day + 1000 });
    const b = await created(store, { no: 'SRCH10002', terminal: 'till-b', createdMs: day + 2000 });
    const c = await created(store, { no: 'SRCH20001', terminal: 'till-a', createdMs: day + 3000 });
    const d = newOrder({ no: 'OTHER_1', terminal: 'till-a', createdMs: day - 1000 });
    await store.orders.insert(d);
    await store.orders.markFailed(d.row.combine_out_trade_no, 'E', 'm', false);
    await store.orders.transition('SRCH10002', { state: 'SUCCESS', transactionIds: new Map([['SRCH10002S0', '4200TXN777']]) });
    const nos = async (f: Parameters<RelayStore['orders']['list']>[0]) => (await store.orders.list(f)).map((o) => o.combine_out_trade_no);

    expect(await nos({ limit: 10 })).toEqual(['SRCH20001', 'SRCH10002', 'SRCH10001', 'OTHER_1']);
    expect(await nos({ limit: 2 })).toEqual(['SRCH20001', 'SRCH10002']);
    expect(await nos({ limit: 10, state: 'SUCCESS' })).toEqual(['SRCH10002']);
    expect(await nos({ limit: 10, state: 'NOTPAY' })).toEqual(['SRCH20001', 'SRCH10001', 'OTHER_1']);
    expect(await nos({ limit: 10, open: true })).toEqual(['SRCH20001', 'SRCH10001']);
    expect(await nos({ limit: 10, open: true, terminal: 'till-a' })).toEqual(['SRCH20001', 'SRCH10001']);
    expect(await nos({ limit: 10, terminal: 'till-b' })).toEqual(['SRCH10002']);
    expect(await nos({ limit: 10, dateStartMs: day })).toEqual(['SRCH20001', 'SRCH10002', 'SRCH10001']);
    expect(await nos({ limit: 10, dateStartMs: day - 86_400_000 })).toEqual(['OTHER_1']);
    expect(await nos({ limit: 10, olderThanMinutes: 0 })).toHaveLength(4);
    // Number search: a prefix of an order number, a sub-order number, a transaction id; whole numbers.
    expect(await nos({ limit: 10, q: 'SRCH1' })).toEqual(['SRCH10002', 'SRCH10001']);
    expect(await nos({ limit: 10, q: 'SRCH' })).toEqual(['SRCH20001', 'SRCH10002', 'SRCH10001']);
    expect(await nos({ limit: 10, q: 'SRCH20001S1' })).toEqual(['SRCH20001']);
    expect(await nos({ limit: 10, q: '4200TXN' })).toEqual(['SRCH10002']);
    expect(await nos({ limit: 10, q: '4200TXN777' })).toEqual(['SRCH10002']);
    expect(await nos({ limit: 10, q: 'OTHER_' })).toEqual(['OTHER_1']);
    // `_` is a plain character here, not a wildcard; other characters are no number at all.
    expect(await nos({ limit: 10, q: 'OTHERX' })).toEqual([]);
    expect(await nos({ limit: 10, q: 'SRCH%' })).toEqual([]);
    expect(await nos({ limit: 10, q: 'srch' })).toEqual([]);
    expect(await nos({ limit: 10, q: 'SRCH1', terminal: 'till-a' })).toEqual(['SRCH10001']);
    expect(await nos({ limit: 10, q: 'SRCH', state: 'SUCCESS' })).toEqual(['SRCH10002']);
    expect([a, b, c].length).toBe(3);
  }));

  it('takings: paid sub-orders per merchant for one day by paid time', () => withStore(async (store) => {
    const day = Date.UTC(2026, 0, 21, -8);
    const pay = async (amounts: number[], paidMs: number) => {
      const o = await created(store, { amounts });
      expect(await store.orders.transition(o.row.combine_out_trade_no, { state: 'SUCCESS', paidMs })).toBe(true);
    };
    await pay([100, 200], day + 10);
    await pay([300, 400], day + 86_399_999);
    await pay([5, 6], day + 86_400_000); // the next day
    await pay([7, 8], day - 1); // the day before
    await created(store, { amounts: [1000, 1000] }); // not paid
    expect(await store.orders.takings(day)).toEqual([
      { mchid: '190000010', amount: 400, count: 2 },
      { mchid: '190000011', amount: 600, count: 2 },
    ]);
    expect(await store.orders.takings(day + 2 * 86_400_000)).toEqual([]);
  }));

  it('alerts are stored once per dedupe key and listed newest first; audit entries are written', () => withStore(async (store) => {
    const a1 = await store.alerts.add('AMOUNT_MISMATCH', 'o-1', 'first', 'k-1', T0);
    expect(a1).toMatchObject({ kind: 'AMOUNT_MISMATCH', combine_out_trade_no: 'o-1', message: 'first', created_at: new Date(T0).toISOString() });
    expect(typeof a1!.id).toBe('number');
    expect(await store.alerts.add('AMOUNT_MISMATCH', 'o-1', 'again', 'k-1')).toBeNull();
    const results = await Promise.all(Array.from({ length: 10 }, () => store.alerts.add('UNKNOWN_ORDER', null, 'race', 'k-2')));
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    const n1 = await store.alerts.add('MERCHANT_MISMATCH', null, 'no key 1', null);
    const n2 = await store.alerts.add('MERCHANT_MISMATCH', null, 'no key 2', null);
    expect(n1).not.toBeNull();
    expect(n2!.id).toBeGreaterThan(n1!.id);
    const list = await store.alerts.list(10);
    expect(list.map((a) => a.message)).toEqual(['no key 2', 'no key 1', 'race', 'first']);
    expect(list[3]).toEqual(a1);
    expect(await store.alerts.list(1)).toHaveLength(1);
    await store.audit.add('till-1', 'refund', 'o-1', { amount: 1 });
    await store.audit.add('till-1', 'close', null, undefined);
  }));

  it('terminals: a name once, found by token hash', () => withStore(async (store) => {
    expect(await store.terminals.create('till-1', 'cashier', 'hash-1', new Date(T0).toISOString())).toBe(true);
    expect(await store.terminals.create('till-1', 'manager', 'hash-2', new Date(T0).toISOString())).toBe(false);
    expect(await store.terminals.create('boss', 'manager', 'hash-3', new Date(T0).toISOString())).toBe(true);
    expect(await store.terminals.byTokenHash('hash-1')).toEqual({ name: 'till-1', role: 'cashier' });
    expect(await store.terminals.byTokenHash('hash-3')).toEqual({ name: 'boss', role: 'manager' });
    expect(await store.terminals.byTokenHash('hash-2')).toBeNull();
  }));

  it('reports its health', () => withStore(async (store) => {
    const h = await store.health();
    expect(h).toMatchObject({ ok: true, engine: engine.name });
    expect(typeof h.latency_ms).toBe('number');
  }));
});

// ─── PostgreSQL only: several relays on one database ─────────────────────────────────────────

describe('two relays on one PostgreSQL database', () => {
  async function pair(bOpts: { feedPollMs?: number } = {}): Promise<{ a: PgStore; b: PgStore; url: string; close(): Promise<void> }> {
    const url = await freshPgDatabase();
    const a = await openPgRelay(url, { applicationName: 'relay-a' });
    const b = await openPgRelay(url, { applicationName: 'relay-b', ...bOpts });
    return { a, b, url, close: async () => { await a.close(); await b.close(); } };
  }

  it("a change made through A reaches B's feed listener (NOTIFY wake-up, no poll)", async () => {
    const { a, b, close } = await pair({ feedPollMs: 3_600_000 });
    try {
      const seenB = await collect(b);
      const o = newOrder();
      await a.orders.insert(o);
      const made = (await a.orders.markCreated(o.row.combine_out_trade_no, 'weixin://a'))!;
      await until(() => seenB.length === 1, 10_000, "B's listener");
      expect(seenB[0]!.order).toEqual(made);
      expect(b.feed.cursor()).toBe(seenB[0]!.cursor);
      // catchUp reads now whatever LISTEN said: afterwards B is at least where A is.
      await a.orders.transition(o.row.combine_out_trade_no, { state: 'SUCCESS' });
      await b.feed.catchUp();
      expect(seenB).toHaveLength(2);
      expect(b.feed.cursor()).toBeGreaterThanOrEqual(a.feed.cursor());
      expect(await b.orders.get(o.row.combine_out_trade_no)).toEqual(seenB[1]!.order);
    } finally {
      await close();
    }
  });

  it('concurrent duplicate notifications split over A and B change the order once', async () => {
    const { a, b, close } = await pair();
    try {
      const o = await created(a);
      const seen = [await collect(a), await collect(b)];
      const before = a.feed.cursor();
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).notifications.applyPayment(payment(o, 'split-1'))));
      expect(results.filter((r) => r.kind === 'applied' && r.changed)).toHaveLength(1);
      expect(results.filter((r) => r.kind === 'duplicate')).toHaveLength(39);
      const o2 = await created(b);
      const resends = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).notifications.applyPayment(payment(o2, `split-re-${i}`))));
      expect(resends.filter((r) => r.kind === 'applied' && r.changed)).toHaveLength(1);
      await Promise.all([a.feed.catchUp(), b.feed.catchUp()]);
      for (const s of seen) {
        const paid = s.filter((c) => c.cursor > before && c.order.state === 'SUCCESS');
        expect(paid.map((c) => c.order.combine_out_trade_no)).toEqual([o.row.combine_out_trade_no, o2.row.combine_out_trade_no]);
      }
    } finally {
      await close();
    }
  });

  it('the feed never delivers a higher cursor before a lower one: many concurrent changes from both relays', async () => {
    const { a, b, close } = await pair();
    try {
      const seen = [await collect(a), await collect(b)];
      const orders: NewOrder[] = [];
      for (let i = 0; i < 30; i++) {
        const o = newOrder();
        await (i % 2 ? a : b).orders.insert(o);
        orders.push(o);
      }
      // Every order: created, then paying, then paid or closed, each step through either relay, all at once.
      const steps = await Promise.all(orders.map(async (o, i) => {
        const no = o.row.combine_out_trade_no;
        const x = i % 2 ? a : b;
        const y = i % 2 ? b : a;
        let n = 0;
        if (await x.orders.markCreated(no, 'weixin://c')) n++;
        if (await y.orders.transition(no, { state: 'USERPAYING' })) n++;
        if (i % 3 === 0 ? await x.notifications.applyPayment(payment(o, `ord-${i}`)).then((r) => r.kind === 'applied' && r.changed) : await x.orders.transition(no, { state: 'CLOSED' })) n++;
        return n;
      }));
      const total = steps.reduce((p, q) => p + q, 0);
      expect(total).toBe(90);
      await Promise.all([a.feed.catchUp(), b.feed.catchUp()]);
      const rows = new Map<string, OrderRow>();
      for (const o of orders) rows.set(o.row.combine_out_trade_no, (await a.orders.row(o.row.combine_out_trade_no))!);
      for (const s of seen) {
        expect(strictlyIncreasing(s.map((c) => c.cursor))).toBe(true);
        // The table is the truth: an order changed twice between two reads shows once, at its latest
        // state; so every order's LAST change seen is its final row, and nothing after it.
        for (const [no, row] of rows) {
          const mine = s.filter((c) => c.order.combine_out_trade_no === no);
          expect(mine.at(-1)!.cursor).toBe(row.cursor);
          expect(mine.at(-1)!.order.state).toBe(row.state);
          expect(mine.at(-1)!.order.version).toBe(row.version);
        }
        expect(s.at(-1)!.cursor).toBe(Math.max(...[...rows.values()].map((r) => r.cursor)));
      }
    } finally {
      await close();
    }
  });

  it("B's listening connection killed: B reports it, reconnects, and gets the changes made meanwhile", async () => {
    const { a, b, url, close } = await pair({ feedPollMs: 3_600_000 });
    const dbName = new URL(url).pathname.slice(1);
    // ALTER DATABASE … ALLOW_CONNECTIONS is refused from inside that database.
    const admin = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      const seenB = await collect(b);
      const o = newOrder();
      const p = newOrder();
      await a.orders.insert(o);
      await a.orders.insert(p);
      expect(b.feed.listening()).toBe(true);
      // A's pool opens the connections it will use first (its change and its own feed read at once).
      await Promise.all([0, 1, 2].map(() => a.pool.query('SELECT pg_sleep(0.05)')));
      // No new connection to the database until we say so: B stays deaf while A changes things.
      await admin.query(`ALTER DATABASE ${dbName} WITH ALLOW_CONNECTIONS false`);
      const killed = await admin.query("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'relay-b-feed' AND query LIKE 'LISTEN%'");
      expect(killed.rows).toEqual([{ ok: true }]);
      await until(() => !b.feed.listening(), 10_000, 'B to notice');
      expect(await b.health()).toMatchObject({ ok: false, engine: 'postgresql' });
      // Meanwhile (before B listens again), through A only: B's NOTIFY for these is lost.
      await a.orders.markCreated(o.row.combine_out_trade_no, 'weixin://k');
      await a.orders.markCreated(p.row.combine_out_trade_no, 'weixin://p');
      await a.orders.transition(o.row.combine_out_trade_no, { state: 'SUCCESS' });
      expect(seenB).toEqual([]);
      expect(b.feed.listening()).toBe(false);
      await admin.query(`ALTER DATABASE ${dbName} WITH ALLOW_CONNECTIONS true`);
      await until(() => b.feed.listening(), 10_000, 'B to reconnect');
      // The table is the truth: each order once, at its latest state, in cursor order.
      await until(() => seenB.length === 2, 10_000, 'the changes made meanwhile');
      expect(seenB.map((c) => [c.order.combine_out_trade_no, c.order.state])).toEqual([[p.row.combine_out_trade_no, 'NOTPAY'], [o.row.combine_out_trade_no, 'SUCCESS']]);
      expect(b.feed.cursor()).toBe(a.feed.cursor());
      expect(await b.health()).toMatchObject({ ok: true });
      // And the new connection listens: a later change arrives by NOTIFY (no poll here).
      const o2 = newOrder();
      await a.orders.insert(o2);
      await a.orders.markCreated(o2.row.combine_out_trade_no, 'weixin://k2');
      await until(() => seenB.length === 3, 10_000, 'a change after the reconnect');
      expect(strictlyIncreasing(seenB.map((c) => c.cursor))).toBe(true);
    } finally {
      await admin.end();
      await close();
    }
  });

  it('serving refuses a database that is not migrated; health never shows the URL', async () => {
    const { openPgStore } = await import('../../shared/relay/pg/index');
    const url = (await freshPgDatabase()).replace(/store_\d+$/, 'postgres');
    await expect(openPgStore(url)).rejects.toMatchObject({ code: 'SCHEMA_NOT_MIGRATED', message: expect.stringContaining('npm run relay -- migrate') });
    const { a, b } = await pair();
    await b.close();
    // The database gone from under A (its pool closed): not ok, and nothing of the URL in the answer.
    await a.feed.close();
    await a.pool.end();
    const h = await a.health();
    expect(h).toMatchObject({ ok: false, engine: 'postgresql' });
    expect(JSON.stringify(h)).not.toMatch(/127\.0\.0\.1|postgres:|relay@/);
  });
});
