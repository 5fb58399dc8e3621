/**
 * HTTP routes of the counter operations (extension): order timeline and terminal-reported
 * events, shifts and their reports, the day-end report, and the manager PIN. The server calls
 * `handle` for paths it does not know; it answers true when it answered the request. Everything
 * goes through the store (`store.counter`, `store.audit`, `store.refunds` for refund totals), so
 * any relay sharing the database answers the same.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { beijingDate, isCalendarDate } from '../wechatpay/time';
import type { Authenticator, TerminalIdentity } from './auth';
import { BadRequest, RelayError } from './errors';
import { ManagerPin, validPin, type PinOptions } from './pin';
import type { RelayStore } from './repo-types';
import { dayEndCsv, Reports, shiftCsv } from './reports';
import { Shifts, validCashier } from './shifts';
import { Timeline, validOrderEvent } from './timeline';

export interface CounterDeps {
  store: RelayStore;
  auth: Authenticator;
  merchants: () => { mchid: string; name: string }[];
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
    const { counter, audit, refunds } = d.store;
    this.pin = new ManagerPin(counter.pin, audit, d.pin);
    this.reports = new Reports({ repo: counter.reports, merchants: d.merchants, refunds: () => refunds });
    this.shifts = new Shifts(counter.shifts, audit, this.reports);
    this.timeline = new Timeline(counter.timeline);
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
        await a.require(auth);
        send(res, 200, await this.timeline.get(no));
        return true;
      }
      if (o[2] === 'events' && method === 'POST') {
        const who = await a.require(auth);
        const e = validOrderEvent(await readJson(req));
        await this.timeline.record(no, who.name, e);
        send(res, 201, { ok: true });
        return true;
      }
      return false;
    }

    if (path === '/v1/shifts' && method === 'POST') {
      const who = await a.require(auth);
      send(res, 201, await this.shifts.open(who.name, validCashier(await readJson(req))));
      return true;
    }
    if (path === '/v1/shifts/current' && method === 'GET') {
      const who = await a.require(auth);
      send(res, 200, { shift: await this.shifts.current(who.name) });
      return true;
    }
    const s = /^\/v1\/shifts\/(\d{1,15})\/(close|report)$/.exec(path);
    if (s) {
      const id = Number(s[1]);
      if (s[2] === 'close' && method === 'POST') {
        const who = await this.identity(auth, elev);
        await readJson(req);
        send(res, 200, await this.shifts.close(id, who));
        return true;
      }
      if (s[2] === 'report' && method === 'GET') {
        const who = await this.identity(auth, elev);
        const fmt = format(q);
        const r = await this.shifts.report(id, who);
        if (fmt === 'csv') sendCsv(res, `shift-${id}.csv`, shiftCsv(r));
        else send(res, 200, r);
        return true;
      }
      return false;
    }

    if (path === '/v1/reports/day-end' && method === 'GET') {
      await a.require(auth, 'manager', elev);
      const date = q.get('date') ?? beijingDate(Date.now());
      if (!isCalendarDate(date)) throw new BadRequest('date', 'must be a calendar day YYYY-MM-DD');
      const start = Date.parse(`${date}T00:00:00+08:00`);
      const fmt = format(q);
      const r = await this.reports.dayEnd(date, start, await this.shifts.between(start, start + 86_400_000));
      if (fmt === 'csv') sendCsv(res, `day-end-${date}.csv`, dayEndCsv(r));
      else send(res, 200, r);
      return true;
    }

    if (path === '/v1/manager/pin') {
      if (method === 'GET') {
        await a.require(auth, 'manager', elev);
        send(res, 200, await this.pin.status());
        return true;
      }
      if (method === 'PUT') {
        // A manager terminal (or a manager token) only: an elevation cannot change the PIN.
        const who = await a.require(auth, 'manager');
        send(res, 200, await this.pin.set(validPin(await readJson(req)), who.name));
        return true;
      }
      return false;
    }
    if (path === '/v1/manager/unlock' && method === 'POST') {
      const who = await a.require(auth);
      if (who.role === 'manager') throw new RelayError(409, 'ALREADY_MANAGER', 'this is a manager terminal: no PIN needed');
      send(res, 200, await this.pin.unlock(who.name, validPin(await readJson(req))));
      return true;
    }
    if (path === '/v1/manager/lock' && method === 'POST') {
      const who = await a.require(auth);
      await readJson(req);
      await this.pin.lock(who.name, typeof elev === 'string' ? elev : undefined);
      send(res, 200, { ok: true });
      return true;
    }
    return false;
  }

  /** The caller, seen as manager when it carries a live elevation (else as itself). */
  private async identity(auth: string | undefined, elev: string | string[] | undefined): Promise<TerminalIdentity> {
    const who = await this.d.auth.require(auth);
    if (who.role === 'manager' || !elev) return who;
    try {
      return await this.d.auth.require(auth, 'manager', elev);
    } catch {
      return who;
    }
  }
}
