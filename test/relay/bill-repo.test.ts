/**
 * The bills repository (repo-bills.ts) on both engines, one suite: staging and the comparison
 * pages against order/refund fixtures (every mismatch kind has rows that show it; keyset pages
 * continue across ties), the bill-date claim (exclusive across two relays on PostgreSQL — two
 * pools —, free again after drop, freed when the holding connection dies), recordRun, and the
 * whole BillService over the repository with stub WeChat Pay clients.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReconciliationReport, RelayEvent } from '../../shared/contracts/relay-api';
import { BillService } from '../../shared/relay/bills';
import type { PgStore } from '../../shared/relay/pg/index';
import { BILL_LOCK_CLASS, billDateKey } from '../../shared/relay/pg/bills';
import type { BillRun, BillsRepo, Page, PageKey } from '../../shared/relay/repo-bills';
import type { RelayStore } from '../../shared/relay/repo-types';
import type { SqliteStore } from '../../shared/relay/sqlite/index';
import type { PayClients } from '../../shared/relay/upstream';
import type { Credentials } from '../../shared/wechatpay/credentials';
import { WechatPayError } from '../../shared/wechatpay/errors';
import { ENGINES as STORES, freshPgDatabase, openPgRelay, stopEngines } from '../helpers/stores';

const DATE = '2026-03-14';
const DAY = Date.parse(`${DATE}T00:00:00+08:00`);
const M1 = '1900000001';
const M2 = '1900000002';
const M3 = '1900000003';

interface Rig {
  store: RelayStore;
  repo: BillsRepo;
  /** Another relay on the same database (PostgreSQL: its own store and pool; SQLite: one process is the only relay). */
  peer: BillsRepo;
  /** Plain SQL with `?` parameters. */
  exec(sql: string, params?: unknown[]): Promise<void>;
  rows<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** PostgreSQL only: ends the backend holding the date's bill lock (as if its relay died). */
  killClaimHolder?(billDate: string): Promise<void>;
  close(): Promise<void>;
}

const dollar = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

const ENGINES: { name: string; open(): Promise<Rig> }[] = [
  {
    name: 'sqlite',
    async open() {
      const opened = await STORES.find((e) => e.name === 'sqlite')!.open();
      const store = opened.store as SqliteStore;
      return {
        store,
        repo: store.bills,
        peer: store.bills,
        exec: async (sql, params = []) => void store.db.prepare(sql).run(...params),
        rows: async <T>(sql: string, params: unknown[] = []) => store.db.prepare(sql).all(...params) as T[],
        close: () => opened.close(),
      };
    },
  },
  {
    name: 'postgresql',
    async open() {
      // Two relays on one database: two stores, two pools.
      const url = await freshPgDatabase();
      const a = await openPgRelay(url, { applicationName: 'relay-a' });
      const b: PgStore = await openPgRelay(url, { applicationName: 'relay-b' });
      return {
        store: a,
        repo: a.bills,
        peer: b.bills,
        exec: async (sql, params = []) => void (await b.pool.query(dollar(sql), params)),
        rows: async <T>(sql: string, params: unknown[] = []) => (await b.pool.query(dollar(sql), params)).rows as T[],
        killClaimHolder: async (billDate) => {
          const r = await b.pool.query(
            `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 2`,
            [BILL_LOCK_CLASS, billDateKey(billDate)],
          );
          if (r.rows.length !== 1 || !r.rows[0].ok) throw new Error(`no single holder of ${billDate}'s lock to end`);
        },
        close: async () => {
          await Promise.all([a.close(), b.close()]);
        },
      };
    },
  },
];

afterAll(() => stopEngines(), 60_000);

// ─── fixtures ──────────────────────────────────────────────────────────────────────────────

async function order(rig: Rig, no: string, state: string, paidMs: number | null, subs: [out: string, mchid: string, amount: number][], txids?: Record<string, string>): Promise<void> {
  const total = subs.reduce((a, s) => a + s[2], 0);
  const created = (paidMs ?? DAY) - 60_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  await rig.exec(`INSERT INTO orders (combine_out_trade_no, state, total_amount, created_at, created_ms, expires_at, expires_ms, paid_at, paid_ms, updated_ms,
      terminal, creation, request_hash, request_json, watch, next_check_ms, transaction_ids)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'till-1', 'CREATED', 'h', '', 0, 0, ?)`,
  [no, state, total, iso(created), created, iso(created + 1_800_000), created + 1_800_000, paidMs === null ? null : iso(paidMs), paidMs, created, txids ? JSON.stringify(txids) : null]);
  for (const [i, [out, mchid, amount]] of subs.entries()) {
    await rig.exec(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, state) VALUES (?, ?, ?, ?, 'x', ?, ?)`, [out, no, i, mchid, amount, state]);
  }
}

async function refund(rig: Rig, rno: string, no: string, out: string, mchid: string, amount: number, status: string, createdMs: number): Promise<void> {
  await rig.exec(`INSERT INTO refunds (out_refund_no, combine_out_trade_no, out_trade_no, mchid, amount, total, status, created_at, created_ms, terminal, request_hash, next_check_ms, watch)
    VALUES (?, ?, ?, ?, ?, 100000, ?, ?, ?, 'boss', 'h', 0, 0)`, [rno, no, out, mchid, amount, status, new Date(createdMs).toISOString(), createdMs]);
}

/** One local day (2026-03-14 Beijing) with one case of every kind, plus what must not show. */
async function seedDay(rig: Rig): Promise<void> {
  const at = (h: number) => DAY + h * 3600_000;
  await order(rig, 'C1', 'SUCCESS', at(9), [['S1A', M1, 100], ['S1B', M2, 200]], { S1A: 'T1A', S1B: 'T1B' });
  await order(rig, 'C2', 'SUCCESS', at(10), [['S2', M1, 300]], { S2: 'T2' }); // bill: 299
  await order(rig, 'C3', 'NOTPAY', null, [['S3', M1, 400]]); // bill: paid
  await order(rig, 'C4', 'SUCCESS', at(11), [['S4', M2, 500]], { S4: 'T4' }); // in M1's bill, not M2's
  await order(rig, 'C5', 'SUCCESS', DAY - 1000, [['S5', M1, 600]], { S5: 'T5' }); // the day before
  await order(rig, 'C6', 'SUCCESS', DAY + 86_400_000, [['S6', M1, 700]], { S6: 'T6' }); // the day after
  // Refunds: R1 agrees, R2 differs, R3 failed here, R4 missing in the bill, R5 pending, R0 the day before.
  await refund(rig, 'R1', 'C1', 'S1A', M1, 50, 'SUCCESS', at(12));
  await refund(rig, 'R2', 'C1', 'S1B', M2, 60, 'SUCCESS', at(12));
  await refund(rig, 'R3', 'C2', 'S2', M1, 10, 'FAILED', at(13));
  await refund(rig, 'R4', 'C4', 'S4', M2, 70, 'PROCESSING', at(13));
  await refund(rig, 'R5', 'C4', 'S4', M2, 5, 'PENDING', at(14));
  await refund(rig, 'R0', 'C5', 'S5', M1, 20, 'SUCCESS', DAY - 500);
}

/** Bills: M1's and M2's, as flat triplets. */
async function stageBills(run: BillRun): Promise<void> {
  await run.stage(M1, ['S1A', 'T1A', 100, 'S2', 'T2', 299, 'S3', 'T3', 400, 'S4', 'T4', 500, 'SFOREIGN', 'TF', 555], ['R1', 'S1A', 50, 'R3', 'S2', 10]);
  await run.stage(M2, ['S1B', 'T1B', 200], ['R2', 'S1B', 61, 'RFOREIGN', 'SX', 9]);
}

async function all<R>(read: (after: PageKey | null) => Promise<Page<R>>): Promise<{ rows: R[]; pages: number }> {
  const rows: R[] = [];
  let pages = 0;
  for (let after: PageKey | null = null; ;) {
    const p = await read(after);
    pages++;
    rows.push(...p.rows);
    if (p.next === null) return { rows, pages };
    after = p.next;
  }
}

// ─── the suite ─────────────────────────────────────────────────────────────────────────────

describe.each(ENGINES)('bills repository on $name', (engine) => {
  let rig: Rig;
  beforeAll(async () => {
    // The PostgreSQL cluster starts once per file (initdb takes seconds).
    if (engine.name === 'postgresql') await freshPgDatabase();
  }, 60_000);
  const open = async () => (rig = await engine.open());
  afterEach(async () => {
    await rig?.close();
  });

  it('stages bills and pages both sides: each mismatch kind shows in the rows', async () => {
    await open();
    await seedDay(rig);
    const claim = (await rig.repo.claimRun(DATE))!;
    const run = await rig.repo.openRun(claim);
    try {
      await stageBills(run);
      const end = DAY + 86_400_000;

      const m1 = await all((a) => run.billPage(M1, a, 2));
      expect(m1.pages).toBe(3);
      expect(m1.rows).toEqual([
        { out_trade_no: 'S1A', transaction_id: 'T1A', bill_amount: 100, combine_out_trade_no: 'C1', local_mchid: M1, local_amount: 100, state: 'SUCCESS' },
        // AMOUNT_MISMATCH
        { out_trade_no: 'S2', transaction_id: 'T2', bill_amount: 299, combine_out_trade_no: 'C2', local_mchid: M1, local_amount: 300, state: 'SUCCESS' },
        // NOT_PAID_LOCALLY
        { out_trade_no: 'S3', transaction_id: 'T3', bill_amount: 400, combine_out_trade_no: 'C3', local_mchid: M1, local_amount: 400, state: 'NOTPAY' },
        // MCHID_MISMATCH
        { out_trade_no: 'S4', transaction_id: 'T4', bill_amount: 500, combine_out_trade_no: 'C4', local_mchid: M2, local_amount: 500, state: 'SUCCESS' },
        // UNKNOWN_ORDER
        { out_trade_no: 'SFOREIGN', transaction_id: 'TF', bill_amount: 555, combine_out_trade_no: null, local_mchid: null, local_amount: null, state: null },
      ]);
      expect((await all((a) => run.billPage(M2, a, 2))).rows.map((r) => r.out_trade_no)).toEqual(['S1B']);
      expect((await run.billPage(M3, null, 2)).rows).toEqual([]);

      // The day's payments only, in paid order, one order (all its sub-orders) at a time.
      const local = await all((a) => run.localPage(DAY, end, a, 1));
      expect(local.rows).toEqual([
        { out_trade_no: 'S1A', combine_out_trade_no: 'C1', mchid: M1, amount: 100, transaction_id: 'T1A', in_bill: true },
        { out_trade_no: 'S1B', combine_out_trade_no: 'C1', mchid: M2, amount: 200, transaction_id: 'T1B', in_bill: true },
        { out_trade_no: 'S2', combine_out_trade_no: 'C2', mchid: M1, amount: 300, transaction_id: 'T2', in_bill: true },
        // MISSING_IN_BILL: S4 is in M1's bill, not in its own merchant's
        { out_trade_no: 'S4', combine_out_trade_no: 'C4', mchid: M2, amount: 500, transaction_id: 'T4', in_bill: false },
      ]);
      expect(local.pages).toBe(4);

      expect((await all((a) => run.billRefundPage(M1, a, 1))).rows).toEqual([
        { out_refund_no: 'R1', out_trade_no: 'S1A', bill_amount: 50, combine_out_trade_no: 'C1', local_mchid: M1, local_out_trade_no: 'S1A', local_amount: 50, status: 'SUCCESS' },
        // REFUND_UNKNOWN (failed here)
        { out_refund_no: 'R3', out_trade_no: 'S2', bill_amount: 10, combine_out_trade_no: 'C2', local_mchid: M1, local_out_trade_no: 'S2', local_amount: 10, status: 'FAILED' },
      ]);
      expect((await all((a) => run.billRefundPage(M2, a, 5))).rows).toEqual([
        // REFUND_AMOUNT_MISMATCH
        { out_refund_no: 'R2', out_trade_no: 'S1B', bill_amount: 61, combine_out_trade_no: 'C1', local_mchid: M2, local_out_trade_no: 'S1B', local_amount: 60, status: 'SUCCESS' },
        // REFUND_UNKNOWN (never made here)
        { out_refund_no: 'RFOREIGN', out_trade_no: 'SX', bill_amount: 9, combine_out_trade_no: null, local_mchid: null, local_out_trade_no: null, local_amount: null, status: null },
      ]);
      // Accepted refunds initiated that day: not FAILED (R3), not PENDING (R5), not the day before (R0).
      expect((await all((a) => run.localRefundPage(DAY, end, a, 1))).rows).toEqual([
        { out_refund_no: 'R1', out_trade_no: 'S1A', combine_out_trade_no: 'C1', mchid: M1, amount: 50, in_bill: true },
        { out_refund_no: 'R2', out_trade_no: 'S1B', combine_out_trade_no: 'C1', mchid: M2, amount: 60, in_bill: true },
        // REFUND_MISSING_IN_BILL
        { out_refund_no: 'R4', out_trade_no: 'S4', combine_out_trade_no: 'C4', mchid: M2, amount: 70, in_bill: false },
      ]);
    } finally {
      await run.drop();
    }
  });

  it('keyset pages continue across orders paid in the same millisecond and across batches', async () => {
    await open();
    const t = DAY + 3600_000;
    // Five orders at one paid_ms, inserted out of key order.
    for (const k of [3, 1, 5, 2, 4]) await order(rig, `C${k}`, 'SUCCESS', t, [[`S${k}`, M1, k]], { [`S${k}`]: `T${k}` });
    const run = await rig.repo.openRun((await rig.repo.claimRun(DATE))!);
    try {
      // Batches: a key staged again keeps its last row (within a batch and across batches).
      await run.stage(M1, ['S1', 'T1', 1, 'S2', 'T2', 99, 'S2', 'T2', 2], []);
      await run.stage(M1, ['S3', 'T3', 3, 'S1', 'T1x', 10], ['R9', 'S1', 1, 'R9', 'S1', 2]);
      const local = await all((a) => run.localPage(DAY, DAY + 86_400_000, a, 2));
      expect(local.pages).toBe(3);
      expect(local.rows.map((r) => [r.out_trade_no, r.in_bill]).sort()).toEqual([['S1', true], ['S2', true], ['S3', true], ['S4', false], ['S5', false]]);
      const bill = await all((a) => run.billPage(M1, a, 2));
      expect(bill.rows.map((r) => [r.out_trade_no, r.transaction_id, r.bill_amount])).toEqual([['S1', 'T1x', 10], ['S2', 'T2', 2], ['S3', 'T3', 3]]);
      expect((await run.billRefundPage(M1, null, 10)).rows.map((r) => [r.out_refund_no, r.bill_amount])).toEqual([['R9', 2]]);
      // A failed bill: nothing of it stays.
      await run.discard(M1);
      expect((await run.billPage(M1, null, 10)).rows).toEqual([]);
      expect((await run.billRefundPage(M1, null, 10)).rows).toEqual([]);
    } finally {
      await run.drop();
    }
  });

  it('claimRun: one run of a date at a time across relays; free again after drop', async () => {
    await open();
    const a = await rig.repo.claimRun(DATE);
    expect(a).not.toBeNull();
    // Another relay (PostgreSQL: another pool) and this one again: refused while it runs.
    expect(await rig.peer.claimRun(DATE)).toBeNull();
    expect(await rig.repo.claimRun(DATE)).toBeNull();
    // Another date is another run.
    const other = await rig.peer.claimRun('2026-03-15');
    expect(other).not.toBeNull();
    const run = await rig.repo.openRun(a!);
    await run.stage(M1, ['S1', 'T1', 1], []);
    expect(await rig.peer.claimRun(DATE)).toBeNull();
    await run.drop();
    await run.drop(); // idempotent
    const again = await rig.peer.claimRun(DATE);
    expect(again).not.toBeNull();
    // A claim released without a run frees the date as well.
    await again!.release();
    await other!.release();
    const third = await rig.repo.claimRun(DATE);
    expect(third).not.toBeNull();
    // The next run starts from an empty staging area.
    const run2 = await rig.repo.openRun(third!);
    expect((await run2.billPage(M1, null, 10)).rows).toEqual([]);
    await run2.drop();
  });

  // PostgreSQL only (a claim held by a connection); defined only there, so nothing shows as skipped.
  if (engine.name === 'postgresql') it('claimRun: a claim whose connection dies is released (the relay died)', async () => {
    await open();
    const claim = await rig.repo.claimRun(DATE);
    const run = await rig.repo.openRun(claim!);
    await run.stage(M1, ['S1', 'T1', 1], []);
    expect(await rig.peer.claimRun(DATE)).toBeNull();
    await rig.killClaimHolder!(DATE);
    // The server frees the lock once that backend has exited: poll (no fixed sleep).
    let taken = null;
    for (const until = Date.now() + 10_000; !taken && Date.now() < until;) {
      taken = await rig.peer.claimRun(DATE);
      if (!taken) await new Promise((r) => setImmediate(r));
    }
    expect(taken).not.toBeNull();
    // The dead run's calls fail; its drop neither throws nor pools the dead connection.
    await expect(run.billPage(M1, null, 10)).rejects.toThrow();
    await run.drop();
    // The first relay is still usable and sees the date taken by the other.
    expect(await rig.repo.claimRun(DATE)).toBeNull();
    await taken!.release();
    const mine = await rig.repo.claimRun(DATE);
    expect(mine).not.toBeNull();
    await mine!.release();
  });

  it('recordRun stores the report', async () => {
    await open();
    const report: ReconciliationReport = {
      bill_date: DATE, generated_at: '2026-03-15T03:00:00.000Z', merchants: [], mismatches: [], mismatch_count: 0, mismatches_truncated: false, ok: true,
    };
    await rig.repo.recordRun(DATE, report.generated_at, 'boss', report);
    const rows = await rig.rows<{ bill_date: string; at: string; terminal: string; report: string }>('SELECT bill_date, at, terminal, report FROM bill_runs');
    expect(rows.map((r) => ({ ...r, report: JSON.parse(r.report) }))).toEqual([{ bill_date: DATE, at: report.generated_at, terminal: 'boss', report }]);
  });

  it('BillService over the repository: report, mismatch kinds, NO_KEYS, NOT_READY, progress, audit, 409 while running', async () => {
    await open();
    await seedDay(rig);
    type Row = { out_trade_no: string; transaction_id: string; total_fee: number; trade_state: string; out_refund_no: string; refund_fee: number; fee_milli_fen: number };
    const pay = (no: string, txid: string, fee: number): Row => ({ out_trade_no: no, transaction_id: txid, total_fee: fee, trade_state: 'SUCCESS', out_refund_no: '', refund_fee: 0, fee_milli_fen: 600 });
    const ref = (rno: string, no: string, fee: number): Row => ({ out_refund_no: rno, out_trade_no: no, transaction_id: 'X', total_fee: 0, trade_state: 'REFUND', refund_fee: fee, fee_milli_fen: 0 });
    const bills = new Map<string, Row[] | Error>([
      [M1, [pay('S1A', 'T1A', 100), pay('S2', 'T2', 299), pay('S3', 'T3', 400), pay('S4', 'T4', 500), pay('SFOREIGN', 'TF', 555), ref('R1', 'S1A', 50), ref('R3', 'S2', 10)]],
      [M2, [pay('S1B', 'T1B', 200), ref('R2', 'S1B', 61), ref('RFOREIGN', 'SX', 9)]],
    ]);
    let gate: Promise<void> = Promise.resolve();
    const clients = {
      has: (m: string) => m !== M3,
      get: (m: string) => ({
        applyTradeBill: async () => {
          await gate;
          const b = bills.get(m)!;
          if (b instanceof Error) throw b;
          return { download_url: 'x', hash_type: 'SHA1', hash_value: 'x' };
        },
        downloadTradeBill: () => ({
          async *batches() {
            yield bills.get(m) as Row[];
          },
          summary: async () => ({}),
        }),
      }),
    } as unknown as PayClients;
    const credentials = { subMerchants: [{ mchid: M1, name: 'A' }, { mchid: M2, name: 'B' }, { mchid: M3, name: 'C' }] } as unknown as Credentials;
    const events: RelayEvent[] = [];
    let onEvent: (e: RelayEvent) => void = () => {};
    const store = rig.store;
    const log = { warn() {}, info() {}, error() {}, debug() {} } as never;
    const svc = new BillService({ store, clients, credentials, log, publish: (e) => {
      events.push(e);
      onEvent(e);
    } });

    const rep = await svc.run(DATE, 'boss');
    expect(rep.mismatches.map((m) => `${m.kind}:${m.mchid}:${m.out_refund_no ?? m.out_trade_no}`).sort()).toEqual([
      `AMOUNT_MISMATCH:${M1}:S2`, `MCHID_MISMATCH:${M1}:S4`, `MISSING_IN_BILL:${M2}:S4`, `NOT_PAID_LOCALLY:${M1}:S3`,
      `REFUND_AMOUNT_MISMATCH:${M2}:R2`, `REFUND_MISSING_IN_BILL:${M2}:R4`, `REFUND_UNKNOWN:${M1}:R3`, `REFUND_UNKNOWN:${M2}:RFOREIGN`, `UNKNOWN_ORDER:${M1}:SFOREIGN`,
    ].sort());
    expect(rep.mismatch_count).toBe(9);
    expect(rep.mismatches.find((m) => m.kind === 'MISSING_IN_BILL')).toMatchObject({ transaction_id: 'T4', combine_out_trade_no: 'C4', local_amount: 500, bill_amount: null });
    expect(rep.merchants).toEqual([
      { mchid: M1, name: 'A', status: 'OK', bill_count: 5, bill_amount: 1854, local_count: 2, local_amount: 400, fee_amount: 3, bill_refund_count: 2, bill_refund_amount: 60, local_refund_count: 1, local_refund_amount: 50 },
      { mchid: M2, name: 'B', status: 'OK', bill_count: 1, bill_amount: 200, local_count: 2, local_amount: 700, fee_amount: 1, bill_refund_count: 2, bill_refund_amount: 70, local_refund_count: 2, local_refund_amount: 130 },
      { mchid: M3, name: 'C', status: 'NO_KEYS', error: expect.stringContaining('MERCHANT_KEYS_MISSING'), bill_count: 0, bill_amount: 0, local_count: 0, local_amount: 0, fee_amount: 0 },
    ]);
    expect(rep.ok).toBe(false);
    expect(events.map((e) => (e as { stage: string }).stage)).toEqual(['start', 'fetch', 'fetched', 'fetch', 'fetched', 'fetch', 'fetched', 'compare', 'done']);
    const audit = await rig.rows<{ terminal: string; action: string; target: string; detail: string }>('SELECT terminal, action, target, detail FROM audit_log');
    expect(audit.map((a) => ({ ...a, detail: JSON.parse(a.detail) }))).toEqual([
      { terminal: 'boss', action: 'bill_run', target: DATE, detail: { ok: false, mismatches: 9, merchants: [{ mchid: M1, status: 'OK' }, { mchid: M2, status: 'OK' }, { mchid: M3, status: 'NO_KEYS' }] } },
    ]);
    const runs = await rig.rows<{ report: string }>('SELECT report FROM bill_runs');
    expect(runs.map((r) => JSON.parse(r.report))).toEqual([rep]);

    // A bill still being generated: NOT_READY, nothing of it compared or counted as missing.
    bills.set(M2, new WechatPayError('STATEMENT_CREATING', 'bill being generated', { kind: 'STATEMENT_NOT_READY' }));
    const early = await svc.run(DATE, 'boss');
    expect(early.merchants[1]).toMatchObject({ status: 'NOT_READY', bill_count: 0, local_count: 2, local_amount: 700 });
    expect(early.mismatches.filter((m) => m.mchid === M2)).toEqual([]);

    // While a run of the date is going on (here or on another relay): 409.
    let open_!: () => void;
    gate = new Promise((r) => (open_ = r));
    // Claimed once it has published 'start'.
    const started = new Promise<void>((r) => (onEvent = (e) => (e as { stage?: string }).stage === 'start' && r()));
    const first = svc.run(DATE, 'boss');
    await started;
    await expect(new BillService({ store: { ...store, bills: rig.peer } as RelayStore, clients, credentials, log, publish: () => {} }).run(DATE, 'boss'))
      .rejects.toMatchObject({ status: 409, code: 'BILL_RUN_IN_PROGRESS' });
    await expect(svc.run(DATE, 'boss')).rejects.toMatchObject({ code: 'BILL_RUN_IN_PROGRESS' });
    open_();
    await first;
    // Done: the date is free again.
    expect((await svc.run(DATE, 'boss')).bill_date).toBe(DATE);
  });
});
