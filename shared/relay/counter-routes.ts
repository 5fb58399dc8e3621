/**
 * HTTP routes of the counter operations (extension): order timeline and terminal-reported
 * events, shifts and their reports, the day-end report, and the manager PIN. The server calls
 * `handle` for paths it does not know; it answers true when it answered the request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { beijingDate, isCalendarDate } from '../wechatpay/time';
import type { Authenticator } from './auth';
import type { Db } from './db';
import { BadRequest, RelayError } from './errors';
import { ManagerPin, validPin, type PinOptions } from './pin';
import { dayEndCsv, Reports, shiftCsv, type RefundLedger } from './reports';
import { Shifts, validCashier } from './shifts';
import type { OrderStore } from './store';
import { Timeline, validOrderEvent } from './timeline';

export interface CounterDeps {
  db: Db;
  store: OrderStore;
  auth: Authenticator;
  merchants: () => { mchid: string; name: string }[];
  /** Refund records, once the relay keeps them (totals for reports). */
  refundLedger?: () => RefundLedger | null;
  pin?: PinOptions;
}

type Send = (res: ServerResponse, status: number, body: unknown) => void;
type ReadJson = (req: IncomingMessage) => Promise<unknown>;

function sendCsv(res: ServerResponse, filename: string, bytes: Buffer): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, {
    'Content-Type': 'text/csv; charset=utf-8',
    'Content-Length': bytes.length,
    'Content-Disposition': `attachment; filename="${filename}"`,
    'Cache-Control': 'no-store',
  });
  res.end(bytes);
}

function format(q: URLSearchParams): 'json' | 'csv' {
  const f = q.get('format');
  if (f === null || f === 'json') return 'json';
  if (f === 'csv') return 'csv';
  throw new BadRequest('format', 'must be json or csv');
}

export class CounterRoutes {
  readonly pin: ManagerPin;
  readonly reports: Reports;
  readonly shifts: Shifts;
  readonly timeline: Timeline;

  constructor(private readonly d: CounterDeps) {
    this.pin = new ManagerPin(d.db, d.store, d.pin);
    this.reports = new Reports({ db: d.db, merchants: d.merchants, refunds: d.refundLedger });
    this.shifts = new Shifts(d.db, d.store, this.reports);
    this.timeline = new Timeline(d.db);
    d.auth.elevations = (terminal, e) => this.pin.check(terminal, e);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams, send: Send, readJson: ReadJson): Promise<boolean> {
    const method = req.method ?? 'GET';
    const auth = req.headers.authorization;
    const elev = req.headers['x-manager-elevation'];
    const a = this.d.auth;

    const o = /^\/v1\/orders\/([0-9A-Za-z_-]{1,64})\/(timeline|events)$/.exec(path);
    if (o) {
      const no = o[1]!;
      if (o[2] === 'timeline' && method === 'GET') {
        a.require(auth);
        send(res, 200, this.timeline.get(no));
        return true;
      }
      if (o[2] === 'events' && method === 'POST') {
        const who = a.require(auth);
        const e = validOrderEvent(await readJson(req));
        this.timeline.record(no, who.name, e);
        send(res, 201, { ok: true });
        return true;
      }
      return false;
    }

    if (path === '/v1/shifts' && method === 'POST') {
      const who = a.require(auth);
      send(res, 201, this.shifts.open(who.name, validCashier(await readJson(req))));
      return true;
    }
    if (path === '/v1/shifts/current' && method === 'GET') {
      const who = a.require(auth);
      send(res, 200, { shift: this.shifts.current(who.name) });
      return true;
    }
    const s = /^\/v1\/shifts\/(\d{1,15})\/(close|report)$/.exec(path);
    if (s) {
      const id = Number(s[1]);
      if (s[2] === 'close' && method === 'POST') {
        const who = this.identity(auth, elev);
        await readJson(req);
        send(res, 200, this.shifts.close(id, who));
        return true;
      }
      if (s[2] === 'report' && method === 'GET') {
        const who = this.identity(auth, elev);
        const fmt = format(q);
        const r = this.shifts.report(id, who);
        if (fmt === 'csv') sendCsv(res, `shift-${id}.csv`, shiftCsv(r));
        else send(res, 200, r);
        return true;
      }
      return false;
    }

    if (path === '/v1/reports/day-end' && method === 'GET') {
      a.require(auth, 'manager', elev);
      const date = q.get('date') ?? beijingDate(Date.now());
      if (!isCalendarDate(date)) throw new BadRequest('date', 'must be a calendar day YYYY-MM-DD');
      const start = Date.parse(`${date}T00:00:00+08:00`);
      const fmt = format(q);
      const r = this.reports.dayEnd(date, start, this.shifts.between(start, start + 86_400_000));
      if (fmt === 'csv') sendCsv(res, `day-end-${date}.csv`, dayEndCsv(r));
      else send(res, 200, r);
      return true;
    }

    if (path === '/v1/manager/pin') {
      if (method === 'GET') {
        a.require(auth, 'manager', elev);
        send(res, 200, this.pin.status());
        return true;
      }
      if (method === 'PUT') {
        // A manager terminal (or a manager token) only: an elevation cannot change the PIN.
        const who = a.require(auth, 'manager');
        send(res, 200, await this.pin.set(validPin(await readJson(req)), who.name));
        return true;
      }
      return false;
    }
    if (path === '/v1/manager/unlock' && method === 'POST') {
      const who = a.require(auth);
      if (who.role === 'manager') throw new RelayError(409, 'ALREADY_MANAGER', 'this is a manager terminal: no PIN needed');
      send(res, 200, await this.pin.unlock(who.name, validPin(await readJson(req))));
      return true;
    }
    if (path === '/v1/manager/lock' && method === 'POST') {
      const who = a.require(auth);
      await readJson(req);
      this.pin.lock(who.name, typeof elev === 'string' ? elev : undefined);
      send(res, 200, { ok: true });
      return true;
    }
    return false;
  }

  /** The caller, seen as manager when it carries a live elevation (else as itself). */
  private identity(auth: string | undefined, elev: string | string[] | undefined) {
    const who = this.d.auth.require(auth);
    if (who.role === 'manager' || !elev) return who;
    try {
      return this.d.auth.require(auth, 'manager', elev);
    } catch {
      return who;
    }
  }
}
