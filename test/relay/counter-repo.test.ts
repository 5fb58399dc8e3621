/**
 * The counter repositories (repo-counter.ts) as ONE suite on both engines: manager PIN, misses
 * counted atomically, elevations shared by every relay on the database (given on A, accepted on B,
 * ended everywhere by a lock or a new PIN), one open shift per terminal under a race, the order
 * timeline, and the report queries over fixture orders with exact fen sums. "Two relays" are two
 * connections (SQLite) or two pools with their own PgCore (PostgreSQL) on one database.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../shared/relay/db';
import { openPg, type PgPool } from '../../shared/relay/pg/index';
import { PgCore } from '../../shared/relay/pg/core';
import { PgCounter } from '../../shared/relay/pg/counter';
import { ManagerPin } from '../../shared/relay/pin';
import type { CounterRepo } from '../../shared/relay/repo-counter';
import type { AuditRepo } from '../../shared/relay/repo-types';
import { Reports } from '../../shared/relay/reports';
import { Shifts } from '../../shared/relay/shifts';
import { SqliteCounter } from '../../shared/relay/sqlite/counter';
import { OrderStore } from '../../shared/relay/store';
import { Timeline } from '../../shared/relay/timeline';
import { ENGINES as STORES, freshPgDatabase, stopEngines } from '../helpers/stores';

interface Harness {
  /** Relay A and relay B on the same database. */
  a: CounterRepo;
  b: CounterRepo;
  /** Plain SQL with `?` parameters (fixtures and checks). */
  sql(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

const ENGINES: { name: string; open(): Promise<Harness> }[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'counter-'));
      const dbs: Db[] = [openDb(join(dir, 'relay.db')), openDb(join(dir, 'relay.db'))];
      const [a, b] = dbs.map((db) => new SqliteCounter(db, new OrderStore(db)));
      return {
        a: a!, b: b!,
        async sql(text, params = []) {
          const st = dbs[0]!.prepare(text);
          if (st.reader) return st.all(...params) as Record<string, unknown>[];
          st.run(...params);
          return [];
        },
        async close() {
          for (const db of dbs) db.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgresql',
    async open() {
      const url = await freshPgDatabase();
      const pools: PgPool[] = [openPg(url, { max: 6 }), openPg(url, { max: 6 })];
      const [a, b] = pools.map((p) => new PgCounter(new PgCore(p)));
      return {
        a: a!, b: b!,
        async sql(text, params = []) {
          let n = 0;
          return (await pools[0]!.query(text.replace(/\?/g, () => `$${++n}`), params)).rows;
        },
        async close() {
          for (const p of pools) await p.end();
        },
      };
    },
  },
];

afterAll(async () => {
  await stopEngines();
}, 60_000);

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Audit entries a service wrote (the store's audit is another repository's). */
function auditLog(): AuditRepo & { entries: { terminal: string; action: string; target: string | null; detail: unknown }[] } {
  const entries: { terminal: string; action: string; target: string | null; detail: unknown }[] = [];
  return { entries, add: async (terminal, action, target, detail) => void entries.push({ terminal, action, target, detail }) };
}

// ─── order fixtures ────────────────────────────────────────────────────────────────────────

interface Fixture {
  no: string;
  terminal: string;
  state: 'SUCCESS' | 'NOTPAY' | 'CLOSED' | 'PAYERROR';
  creation?: 'CREATED' | 'FAILED';
  createdMs: number;
  paidMs?: number;
  subs: [mchid: string, amount: number][];
}

async function addOrder(h: Harness, f: Fixture): Promise<void> {
  const total = f.subs.reduce((a, [, amount]) => a + amount, 0);
  const iso = (ms: number) => new Date(ms).toISOString();
  await h.sql(`INSERT INTO orders (combine_out_trade_no, state, total_amount, created_at, created_ms, expires_at, expires_ms, paid_at, paid_ms, closed_at,
    updated_ms, terminal, creation, request_hash, request_json, next_check_ms, transaction_ids, paid_via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
    f.no, f.state, total, iso(f.createdMs), f.createdMs, iso(f.createdMs + 7_200_000), f.createdMs + 7_200_000,
    f.paidMs === undefined ? null : iso(f.paidMs), f.paidMs ?? null, f.state === 'CLOSED' ? iso(f.createdMs + 60_000) : null,
    f.createdMs, f.terminal, f.creation ?? 'CREATED', 'h', '', f.createdMs,
    f.paidMs === undefined ? null : JSON.stringify(Object.fromEntries(f.subs.map((_, i) => [`${f.no}-${i}`, `42000${i}`]))),
    f.paidMs === undefined ? null : 'notification',
  ]);
  for (const [i, [mchid, amount]] of f.subs.entries()) {
    await h.sql("INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, state) VALUES (?, ?, ?, ?, 'x', ?, 'NOTPAY')",
      [`${f.no}-${i}`, f.no, i, mchid, amount]);
  }
}

// A Beijing day and the orders around it (see the expected figures in the report tests).
const DAY = Date.parse('2026-03-01T00:00:00+08:00');
const H = 3_600_000;
const FIXTURES: Fixture[] = [
  // till-1's shift runs [DAY, DAY + 5h).
  { no: 'A1', terminal: 'till-1', state: 'SUCCESS', createdMs: DAY + 1 * H, paidMs: DAY + 1 * H + 60_000, subs: [['m1', 1000], ['m2', 2000], ['m3', 3005]] },
  { no: 'A2', terminal: 'till-1', state: 'SUCCESS', createdMs: DAY + 2 * H, paidMs: DAY + 2 * H + 5_000, subs: [['m1', 1500], ['m2', 2500]] },
  { no: 'A3', terminal: 'till-1', state: 'NOTPAY', createdMs: DAY + 3 * H, subs: [['m1', 700], ['m2', 800]] },
  { no: 'A4', terminal: 'till-1', state: 'CLOSED', createdMs: DAY + 3 * H, subs: [['m1', 100], ['m2', 200]] },
  { no: 'A5', terminal: 'till-1', state: 'CLOSED', creation: 'FAILED', createdMs: DAY + 3 * H, subs: [['m1', 100], ['m2', 100]] },
  // Open, made the day before: in the shift's open orders (its terminal's, whenever made), not the day's.
  { no: 'A6', terminal: 'till-1', state: 'NOTPAY', createdMs: DAY - 2 * H, subs: [['m1', 20], ['m2', 30]] },
  // Made before the shift, paid within the day: the day's sale, not the shift's.
  { no: 'C0', terminal: 'till-1', state: 'SUCCESS', createdMs: DAY - 1 * H, paidMs: DAY + 10 * 60_000, subs: [['m1', 100], ['m2', 200]] },
  { no: 'B1', terminal: 'till-2', state: 'SUCCESS', createdMs: DAY + 4 * H, paidMs: DAY + 4 * H, subs: [['m1', 999]] },
  // The next day: in nothing here.
  { no: 'E1', terminal: 'till-1', state: 'SUCCESS', createdMs: DAY + 25 * H, paidMs: DAY + 25 * H, subs: [['m1', 377], ['m3', 400]] },
];

describe.each(ENGINES)('counter repositories on $name', (engine) => {
  const withHarness = (fn: (h: Harness) => Promise<void>) => async () => {
    const h = await engine.open();
    try {
      await fn(h);
    } finally {
      await h.close();
    }
  };

  // ─── PIN ──────────────────────────────────────────────────────────────────────────────────

  it('stores the PIN (get on the other relay); a new PIN clears misses, locks and every elevation', withHarness(async (h) => {
    expect(await h.b.pin.get()).toBeNull();
    await h.a.pin.set({ hash: 'aa'.repeat(32), salt: 'bb'.repeat(16), set_at: '2026-03-01T00:00:00.000Z', set_by: 'boss' });
    expect(await h.b.pin.get()).toEqual({ hash: 'aa'.repeat(32), salt: 'bb'.repeat(16), set_at: '2026-03-01T00:00:00.000Z', set_by: 'boss' });
    await h.a.pin.miss('till-1', 5, 2_000, 1_000);
    await h.a.pin.miss('till-2', 1, 2_000, 1_000);
    expect(await h.b.pin.guard('till-2')).toEqual({ failures: 0, locked_until_ms: 2_000 });
    expect(await h.b.pin.elevate('till-3', sha('e3'), 9_000, 1_000)).toBe(true);
    await h.b.pin.set({ hash: 'cc'.repeat(32), salt: 'dd'.repeat(16), set_at: '2026-03-02T00:00:00.000Z', set_by: 'boss2' });
    expect((await h.a.pin.get())!.hash).toBe('cc'.repeat(32));
    expect(await h.a.pin.guard('till-1')).toBeNull();
    expect(await h.a.pin.guard('till-2')).toBeNull();
    expect(await h.a.pin.elevation(sha('e3'))).toBeNull();
  }));

  it('counts 10 concurrent misses (half on each relay) as 10, each once', withHarness(async (h) => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? h.a : h.b).pin.miss('till-1', 100, 0, 1_000)));
    expect(results.map((r) => (r.kind === 'counted' ? r.failures : -1)).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await h.a.pin.guard('till-1')).toEqual({ failures: 10, locked_until_ms: 0 });
  }));

  it('locks at the limit exactly once under concurrent misses; a right PIN cannot elevate a locked terminal', withHarness(async (h) => {
    const now = 1_000_000;
    const until = now + 900_000;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? h.a : h.b).pin.miss('till-1', 5, until, now)));
    expect(results.filter((r) => r.kind === 'counted' && r.lockedNow)).toEqual([{ kind: 'counted', failures: 5, lockedNow: true }]);
    expect(results.filter((r) => r.kind === 'counted' && !r.lockedNow).map((r) => (r as { failures: number }).failures).sort()).toEqual([1, 2, 3, 4]);
    expect(results.filter((r) => r.kind === 'locked')).toEqual(Array(5).fill({ kind: 'locked', locked_until_ms: until }));
    expect(await h.b.pin.guard('till-1')).toEqual({ failures: 0, locked_until_ms: until });
    // A right PIN checked meanwhile on the other relay: the lock wins, nothing stored.
    expect(await h.b.pin.elevate('till-1', sha('x'), now + 60_000, now + 1)).toBe(false);
    expect(await h.a.pin.elevation(sha('x'))).toBeNull();
    // After the lock the count starts again; a right PIN then clears it.
    expect(await h.a.pin.miss('till-1', 5, until + 900_000, until)).toEqual({ kind: 'counted', failures: 1, lockedNow: false });
    expect(await h.b.pin.elevate('till-1', sha('y'), until + 60_000, until)).toBe(true);
    expect(await h.a.pin.guard('till-1')).toBeNull();
  }));

  it('keeps only the SHA-256 of an elevation; another relay finds it; a lock ends it for its own terminal only; expired rows are swept', withHarness(async (h) => {
    expect(await h.a.pin.elevate('till-1', sha('e1'), 5_000, 1_000)).toBe(true);
    expect(await h.a.pin.elevate('till-2', sha('e2'), 5_000, 1_000)).toBe(true);
    expect(await h.b.pin.elevation(sha('e1'))).toEqual({ terminal: 'till-1', expires_ms: 5_000 });
    const stored = (await h.sql('SELECT hash, terminal FROM manager_elevations ORDER BY terminal')).map((r) => r.hash);
    expect(stored).toEqual([sha('e1'), sha('e2')]);
    // Another terminal cannot end it; its own terminal can, from either relay.
    await h.b.pin.endElevation('till-2', sha('e1'));
    expect(await h.a.pin.elevation(sha('e1'))).not.toBeNull();
    await h.b.pin.endElevation('till-1', sha('e1'));
    expect(await h.a.pin.elevation(sha('e1'))).toBeNull();
    // The next elevation sweeps the expired ones.
    expect(await h.b.pin.elevate('till-3', sha('e3'), 9_000, 5_000)).toBe(true);
    expect((await h.sql('SELECT terminal FROM manager_elevations')).map((r) => r.terminal)).toEqual(['till-3']);
  }));

  it('ManagerPin on two relays: unlock on A works on B; expires by the clock; lock on B ends it on A; a new PIN ends all', withHarness(async (h) => {
    let now = 1_000_000;
    const audit = auditLog();
    const o = { now: () => now, elevationMs: 60_000, lockMs: 600_000 };
    const pinA = new ManagerPin(h.a.pin, audit, o);
    const pinB = new ManagerPin(h.b.pin, audit, o);
    await expect(pinA.unlock('till-1', '1357')).rejects.toMatchObject({ code: 'PIN_NOT_SET' });
    expect(await pinB.set('1357', 'boss')).toEqual({ set: true, set_at: new Date(now).toISOString() });
    expect(await pinA.status()).toMatchObject({ set: true });
    const { elevation, expires_at } = await pinA.unlock('till-1', '1357');
    expect(expires_at).toBe(new Date(now + 60_000).toISOString());
    expect(await pinB.check('till-1', elevation)).toBe(true);
    expect(await pinB.check('till-2', elevation)).toBe(false);
    expect(await pinB.check('till-1', 'not-it')).toBe(false);
    now += 59_999;
    expect(await pinB.check('till-1', elevation)).toBe(true);
    now += 1;
    expect(await pinB.check('till-1', elevation)).toBe(false);

    const second = await pinA.unlock('till-1', '1357');
    await pinB.lock('till-2', second.elevation); // not its elevation: nothing ends
    expect(await pinA.check('till-1', second.elevation)).toBe(true);
    await pinB.lock('till-1', second.elevation);
    expect(await pinA.check('till-1', second.elevation)).toBe(false);

    const third = await pinB.unlock('till-1', '1357');
    const fourth = await pinA.unlock('till-2', '1357');
    await pinA.set('8642', 'boss');
    expect(await pinB.check('till-1', third.elevation)).toBe(false);
    expect(await pinB.check('till-2', fourth.elevation)).toBe(false);
    expect(audit.entries.map((e) => (e.detail as { outcome?: string }).outcome ?? e.action))
      .toEqual(['manager.pin.set', 'OK', 'OK', 'OK', 'OK', 'manager.pin.set']);
  }));

  it('ManagerPin: misses on A and B add up to a lock both relays enforce', withHarness(async (h) => {
    let now = 1_000_000;
    const audit = auditLog();
    const o = { now: () => now, lockMs: 600_000 };
    const pinA = new ManagerPin(h.a.pin, audit, o);
    const pinB = new ManagerPin(h.b.pin, audit, o);
    await pinA.set('2468', 'boss');
    for (let i = 1; i <= 4; i++) {
      await expect((i % 2 ? pinA : pinB).unlock('till-1', '0000')).rejects.toMatchObject({ code: 'WRONG_PIN', extra: { tries_left: 5 - i } });
    }
    await expect(pinB.unlock('till-1', '0000')).rejects.toMatchObject({ status: 423, code: 'PIN_LOCKED', extra: { retry_after_seconds: 600 } });
    await expect(pinA.unlock('till-1', '2468')).rejects.toMatchObject({ status: 423, code: 'PIN_LOCKED' });
    now += 600_000;
    expect((await pinA.unlock('till-1', '2468')).elevation).toBeTruthy();
    expect(audit.entries.filter((e) => e.action === 'manager.unlock').map((e) => (e.detail as { outcome: string }).outcome))
      .toEqual(['WRONG_PIN', 'WRONG_PIN', 'WRONG_PIN', 'WRONG_PIN', 'LOCKED_NOW', 'PIN_LOCKED', 'OK']);
  }));

  // ─── shifts ───────────────────────────────────────────────────────────────────────────────

  it('opens one shift per terminal when 10 opens race on two relays; the rest see it open; closes once', withHarness(async (h) => {
    const opens = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? h.a : h.b).shifts.open('till-1', `c${i}`, new Date(DAY + i).toISOString(), DAY + i)));
    const won = opens.filter((r) => r.ok);
    expect(won).toHaveLength(1);
    const shift = (won[0] as { shift: { id: number } }).shift;
    for (const r of opens.filter((x) => !x.ok)) expect(r).toMatchObject({ ok: false, open: { id: shift.id, terminal: 'till-1' } });
    expect(typeof shift.id).toBe('number');
    expect(await h.b.shifts.current('till-1')).toMatchObject({ id: shift.id, closed_ms: null, report: null });
    expect(await h.a.shifts.current('till-2')).toBeUndefined();
    // Another terminal opens its own.
    const other = await h.a.shifts.open('till-2', '', new Date(DAY + 100).toISOString(), DAY + 100);
    expect(other.ok).toBe(true);

    expect(await h.a.shifts.close(shift.id, new Date(DAY + H).toISOString(), DAY + H, 'till-1', '{"net":1}')).toBe(true);
    expect(await h.b.shifts.close(shift.id, new Date(DAY + H).toISOString(), DAY + H, 'till-1', '{"net":2}')).toBe(false);
    const closed = await h.b.shifts.get(shift.id);
    expect(closed).toMatchObject({ id: shift.id, closed_ms: DAY + H, closed_by: 'till-1', report: '{"net":1}' });
    expect(closed!.opened_ms).toBeGreaterThanOrEqual(DAY);
    expect(await h.a.shifts.current('till-1')).toBeUndefined();
    const again = await h.b.shifts.open('till-1', 'next', new Date(DAY + 2 * H).toISOString(), DAY + 2 * H);
    expect(again.ok).toBe(true);
    expect((await h.a.shifts.between(DAY, DAY + 3 * H)).map((s) => s.terminal)).toEqual(['till-1', 'till-2', 'till-1']);
    expect(await h.a.shifts.between(DAY + 3 * H, DAY + 4 * H)).toEqual([]);
    expect(await h.a.shifts.get(999_999)).toBeUndefined();
  }));

  it('Shifts service: a lost race answers SHIFT_OPEN (409), not an error', withHarness(async (h) => {
    const audit = auditLog();
    const reports = new Reports({ repo: h.a.reports, merchants: () => [] });
    const [sa, sb] = [new Shifts(h.a.shifts, audit, reports), new Shifts(h.b.shifts, audit, reports)];
    const r = await Promise.allSettled([sa.open('till-1', 'x', DAY), sb.open('till-1', 'y', DAY)]);
    expect(r.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    expect((r.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ status: 409, code: 'SHIFT_OPEN' });
    expect(audit.entries.map((e) => e.action)).toEqual(['shift.open']);
  }));

  // ─── timeline ─────────────────────────────────────────────────────────────────────────────

  it('records terminal events only for known orders and reads the timeline parts', withHarness(async (h) => {
    await addOrder(h, FIXTURES[0]!);
    const at = (ms: number) => new Date(ms).toISOString();
    expect(await h.a.timeline.record('NOPE', at(DAY + H), 'till-1', 'printed', '{}')).toBe(false);
    expect(await h.b.timeline.get('NOPE')).toBeNull();
    // A1: created at DAY + 1h, paid a minute later.
    expect(await h.a.timeline.record('A1', at(DAY + H + 30_000), 'till-1', 'printed', '{"kind":"slip","reprint":false}')).toBe(true);
    expect(await h.b.timeline.record('A1', at(DAY + H + 300_000), 'till-2', 'printed', '{"kind":"receipt","reprint":true}')).toBe(true);
    const audit = 'INSERT INTO audit_log (at, terminal, action, target, detail) VALUES (?, ?, ?, ?, ?)';
    await h.sql(audit, [at(DAY + 2 * H), 'boss', 'refund.create', 'A1', '{"amount":100}']);
    await h.sql(audit, [at(DAY + 2 * H), 'boss', 'close', 'OTHER', null]);
    const refund = `INSERT INTO refunds (out_refund_no, combine_out_trade_no, out_trade_no, mchid, amount, total, status, refund_id, created_at, created_ms,
      success_time, terminal, request_hash, next_check_ms) VALUES (?, 'A1', 'A1-0', 'm1', ?, 1000, ?, ?, ?, ?, ?, 'boss', 'h', 0)`;
    // WeChat Pay's success_time: +08:00 and whole seconds (the timeline shows it as UTC ISO).
    await h.sql(refund, ['R2', 100, 'SUCCESS', 'rid2', at(DAY + 2 * H + 60_000), DAY + 2 * H + 60_000, '2026-03-01T02:45:00+08:00']);
    await h.sql(refund, ['R1', 50, 'SUCCESS', 'rid1', at(DAY + 2 * H), DAY + 2 * H, '2026-03-01T02:30:00+08:00']);
    await h.sql(refund, ['R3', 70, 'PROCESSING', null, at(DAY + 2 * H + 120_000), DAY + 2 * H + 120_000, null]);
    const t = (await h.a.timeline.get('A1'))!;
    expect(t.order).toMatchObject({ combine_out_trade_no: 'A1', state: 'SUCCESS', terminal: 'till-1', creation: 'CREATED', paid_via: 'notification' });
    expect(t.events).toEqual([
      { at: at(DAY + H + 30_000), terminal: 'till-1', type: 'printed', detail: '{"kind":"slip","reprint":false}' },
      { at: at(DAY + H + 300_000), terminal: 'till-2', type: 'printed', detail: '{"kind":"receipt","reprint":true}' },
    ]);
    expect(t.audit).toEqual([{ at: at(DAY + 2 * H), terminal: 'boss', action: 'refund.create', detail: '{"amount":100}' }]);
    expect(t.refunds.map((r) => [r.out_refund_no, r.amount, r.refund_id])).toEqual([['R1', 50, 'rid1'], ['R2', 100, 'rid2']]);

    // The service assembles them.
    const timeline = new Timeline(h.b.timeline);
    await timeline.record('A1', 'till-1', { type: 'printed', kind: 'receipt', reprint: false }, DAY + 3 * H);
    await expect(timeline.record('NOPE', 'till-1', { type: 'printed', kind: 'slip', reprint: false })).rejects.toMatchObject({ status: 404, code: 'ORDER_NOT_FOUND' });
    const entries = (await timeline.get('A1')).entries;
    const types = entries.map((e) => `${e.type}:${e.by}`);
    expect(types).toEqual(['created:till-1', 'qr_issued:wechatpay', 'printed:till-1', 'paid:wechatpay', 'printed:till-2', 'refund:boss', 'refund:wechatpay', 'refund:wechatpay', 'printed:till-1']);
    expect(entries[6]).toMatchObject({ at: at(DAY + 2.5 * H), detail: { out_refund_no: 'R1', amount: 50, mchid: 'm1' } });
  }));

  // ─── reports ──────────────────────────────────────────────────────────────────────────────

  it('shift figures: the terminal\'s sales made in the span (once per order, once per merchant), its open orders, unpaid ones', withHarness(async (h) => {
    for (const f of FIXTURES) await addOrder(h, f);
    const f = await h.b.reports.shift('till-1', DAY, DAY + 5 * H);
    expect(f.sales).toEqual({ count: 2, amount: 6005 + 4000 });
    expect(f.merchants).toEqual([
      { mchid: 'm1', count: 2, amount: 2500 },
      { mchid: 'm2', count: 2, amount: 4500 },
      { mchid: 'm3', count: 1, amount: 3005 },
    ]);
    expect(f.open).toEqual({ count: 2, amount: 1500 + 50 });
    expect(f.unpaid).toEqual({ closed: 1, failed: 1 });
    expect(await h.a.reports.shift('till-9', DAY, DAY + 5 * H)).toEqual({ sales: { count: 0, amount: 0 }, merchants: [], open: { count: 0, amount: 0 }, unpaid: { closed: 0, failed: 0 } });
  }));

  it('day and takings figures: paid in the day (by paid time) across terminals, per terminal, open orders made that day', withHarness(async (h) => {
    for (const f of FIXTURES) await addOrder(h, f);
    const merchants = [{ mchid: 'm1', count: 4, amount: 1000 + 1500 + 100 + 999 }, { mchid: 'm2', count: 3, amount: 2000 + 2500 + 200 }, { mchid: 'm3', count: 1, amount: 3005 }];
    const d = await h.a.reports.day(DAY, DAY + 24 * H);
    expect(d.sales).toEqual({ count: 4, amount: 6005 + 4000 + 300 + 999 });
    expect(d.merchants).toEqual(merchants);
    expect(d.merchants.reduce((a, m) => a + m.amount, 0)).toBe(d.sales.amount);
    expect(d.terminals).toEqual([{ terminal: 'till-1', count: 3, amount: 6005 + 4000 + 300 }, { terminal: 'till-2', count: 1, amount: 999 }]);
    expect(d.open).toEqual({ count: 1, amount: 1500 });
    expect(await h.b.reports.paid(DAY, DAY + 24 * H)).toEqual({ sales: d.sales, merchants });
    expect(await h.b.reports.paid(DAY + 24 * H, DAY + 48 * H)).toEqual({ sales: { count: 1, amount: 777 }, merchants: [{ mchid: 'm1', count: 1, amount: 377 }, { mchid: 'm3', count: 1, amount: 400 }] });

    expect(await h.a.reports.lastBillRun('2026-03-01')).toBeNull();
    const run = 'INSERT INTO bill_runs (bill_date, at, terminal, report) VALUES (?, ?, ?, ?)';
    await h.sql(run, ['2026-03-01', '2026-03-02T10:00:00.000Z', 'boss', '{"n":1}']);
    await h.sql(run, ['2026-03-01', '2026-03-02T11:00:00.000Z', 'boss', '{"n":2}']);
    await h.sql(run, ['2026-03-02', '2026-03-03T10:00:00.000Z', 'boss', '{"n":3}']);
    expect(await h.b.reports.lastBillRun('2026-03-01')).toEqual({ at: '2026-03-02T11:00:00.000Z', report: '{"n":2}' });
  }));

  it('Reports service: shift, day-end and takings add refunds from the ledger (async) to the figures', withHarness(async (h) => {
    for (const f of FIXTURES) await addOrder(h, f);
    const asked: unknown[][] = [];
    const ledger = {
      totals: async (from: number, to: number, terminal?: string) => {
        asked.push([from, to, terminal]);
        return [{ mchid: 'm1', count: 1, amount: 1000 }, { mchid: 'm9', count: 1, amount: 5 }];
      },
    };
    const reports = new Reports({ repo: h.a.reports, merchants: () => [{ mchid: 'm1', name: '一号' }, { mchid: 'm4', name: '四号' }], refunds: () => ledger });
    const shift = { id: 1, terminal: 'till-1', cashier: '', opened_at: new Date(DAY).toISOString(), closed_at: new Date(DAY + 5 * H).toISOString(), closed_by: 'till-1' };
    const s = await reports.shift(shift, DAY + 6 * H);
    expect(asked[0]).toEqual([DAY, DAY + 5 * H, 'till-1']);
    expect(s.sales).toEqual({ count: 2, amount: 10005 });
    expect(s.merchants.map((m) => [m.mchid, m.name, m.count, m.amount, m.refund_amount, m.net])).toEqual([
      ['m1', '一号', 2, 2500, 1000, 1500], ['m4', '四号', 0, 0, 0, 0], ['m2', 'm2', 2, 4500, 0, 4500], ['m3', 'm3', 1, 3005, 0, 3005], ['m9', 'm9', 0, 0, 5, -5],
    ]);
    expect(s.refunds).toEqual({ count: 2, amount: 1005, available: true, note: null });
    expect(s.net).toBe(10005 - 1005);
    expect(s.open_orders).toEqual({ count: 2, amount: 1550 });
    const d = await reports.dayEnd('2026-03-01', DAY, [shift], DAY + 30 * H);
    expect(d.sales).toEqual({ count: 4, amount: 11304 });
    expect(d.net).toBe(11304 - 1005);
    expect(d.merchants.every((m) => m.bill_status === 'NEVER_RUN')).toBe(true);
    const t = await reports.takings(DAY);
    expect(t).toMatchObject({ count: 4, gross_amount: 11304, refund_amount: 1005, amount: 11304 - 1005, refund_count: 2 });
  }));
});

// The relay's stores carry these repositories as `store.counter`, next to the audit the services use.
describe.each(STORES)('store.counter on $name', (engine) => {
  it('is wired: a PIN, an elevation and a shift through the store (services auditing through store.audit)', async () => {
    const { store, close } = await engine.open();
    try {
      let now = 5_000_000;
      const pin = new ManagerPin(store.counter.pin, store.audit, { now: () => now });
      await pin.set('4321', 'boss');
      const { elevation } = await pin.unlock('till-1', '4321');
      expect(await pin.check('till-1', elevation)).toBe(true);
      now += 5 * 60_000;
      expect(await pin.check('till-1', elevation)).toBe(false);
      const shifts = new Shifts(store.counter.shifts, store.audit, new Reports({ repo: store.counter.reports, merchants: () => [] }));
      const s = await shifts.open('till-1', '小李', now);
      await expect(shifts.open('till-1', '小李', now)).rejects.toMatchObject({ code: 'SHIFT_OPEN' });
      expect(await shifts.current('till-1')).toEqual(s);
    } finally {
      await close();
    }
  });
});
