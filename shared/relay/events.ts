/**
 * WebSocket `/v1/events`: token checked at the upgrade (401 before any WebSocket exists),
 * then a snapshot, or — with `?since=<cursor>` — every order that changed while away, then
 * live messages. Each message is serialized once and sent to every socket. Ping/pong drops
 * dead sockets; a `heartbeat` message lets terminals detect a dead relay.
 *
 * Load: many terminals (re)connecting at once must not stall notifications, which share
 * this event loop. So the first message is bounded (open orders plus a few recent ones, a
 * cashier's own only; a replay of at most REPLAY_MAX orders, else a fresh snapshot marked
 * `resync`), built in slices with the event loop free between them, encoded once and shared:
 * connections of one scope arriving within a moment get the same snapshot bytes followed by
 * the live messages it does not cover (kept in a ring of recent messages). Each terminal has
 * a few sockets at most.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { WebSocketServer, WebSocket } from 'ws';
import type { Alert, Order, RelayEvent } from '../contracts/relay-api';
import type { Authenticator, TerminalIdentity } from './auth';
import type { Logger } from './log';
import { REPLAY_MAX } from './store';
import type { OrderRow, RelayStore } from './repo-types';

export interface HubOptions {
  heartbeatMs: number;
  /** Sockets per terminal; a further one closes that terminal's oldest (close code 4008). */
  perTerminal?: number;
  /** Snapshot: open orders (newest first) at most. */
  snapshotOpen?: number;
  /** Snapshot: orders changed in the last hour, at most. */
  snapshotRecent?: number;
  /** Replay on `?since=`: more changed orders than this → a `resync` snapshot instead. */
  replayMax?: number;
}

/** Close code for the socket displaced by a terminal's newer one (4000–4999: application). */
export const CLOSE_TOO_MANY = 4008;
/** Close code for a socket that does not read its messages (send buffer over SLOW_BYTES). */
export const CLOSE_TOO_SLOW = 4009;
const SLOW_BYTES = 8 * 1024 * 1024;
/** A serialized snapshot is reused by connections within this long (with the ring after it). */
const SNAPSHOT_REUSE_MS = 2000;
/** Live messages kept for late joiners and short resumes. */
const RING_MAX = 4096;
/** Orders serialized per slice between two turns of the event loop. */
const SLICE = 64;

interface Client {
  /** Among every relay's sockets (RELAY_EVENTS_PER_TERMINAL across relays, store.sockets). */
  id: string;
  ws: WebSocket;
  who: TerminalIdentity;
  alive: boolean;
}

/** A message as UTF-8 bytes: encoded once, however many sockets it goes to. */
type Msg = Buffer;

interface Built {
  cursor: number;
  at: number;
  plain: Msg;
  /** The same snapshot marked `"resync": true`. */
  resync: Msg;
}

const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

export class EventHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly clients = new Set<Client>();
  /** Every socket of a terminal, joined or still pending, oldest first. */
  private readonly byTerminal = new Map<string, Client[]>();
  /** Sockets whose first message is being built: counted as listeners, not yet sent to. */
  private pending = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly o: Required<HubOptions>;
  /** Set by close(): sockets still being started are closed instead of joining. */
  private closed = false;
  /** Sockets by id, when the store counts them across relays. */
  private readonly byId = new Map<string, Client>();
  /** order.updated messages with cursor > ringFrom, ascending. */
  private ring: { cursor: number; no: string; msg: Msg }[] = [];
  private ringFrom: number;
  /** Snapshots by scope: `*` (managers: every terminal's orders) or a cashier's name. */
  private readonly snapshotBuilds = new Map<string, Promise<Built>>();
  private readonly snapshotCache = new Map<string, Built>();

  constructor(
    private readonly store: RelayStore,
    private readonly auth: Authenticator,
    private readonly log: Logger,
    opts: HubOptions | number,
  ) {
    const o = typeof opts === 'number' ? { heartbeatMs: opts } : opts;
    this.o = { perTerminal: 4, snapshotOpen: 1000, snapshotRecent: 100, replayMax: REPLAY_MAX, ...o };
    this.ringFrom = store.feed.cursor();
    this.timer = setInterval(() => this.heartbeat(), this.o.heartbeatMs);
    this.timer.unref();
    store.sockets?.onCloseRequest((id) => this.closeTooMany(id));
    store.feed.onChange((change) => {
      if (this.clients.size + this.pending === 0) {
        // Nobody listening: the order is neither read nor serialized, and the ring has a gap.
        this.ring = [];
        this.ringFrom = change.cursor;
        return;
      }
      this.orderUpdated(change.order, change.cursor);
    });
  }

  get size(): number {
    return this.clients.size;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://relay');
    if (url.pathname !== '/v1/events') return refuse(socket, 404, 'Not Found');
    // The token is looked up in the database: until then a failing socket just goes away.
    const drop = () => socket.destroy();
    socket.on('error', drop);
    this.auth.identify(req.headers.authorization).then(
      (who) => {
        socket.off('error', drop);
        if (socket.destroyed) return;
        if (this.closed) return void socket.destroy();
        if (!who) return refuse(socket, 401, 'Unauthorized');
        this.upgrade(req, socket, head, url, who);
      },
      (err) => {
        this.log.warn({ err: (err as Error).message }, 'events: token check failed');
        socket.off('error', drop);
        refuseUnavailable(socket);
      },
    );
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, who: TerminalIdentity): void {
    const sinceRaw = url.searchParams.get('since');
    const since = sinceRaw !== null && /^\d{1,15}$/.test(sinceRaw) ? Number(sinceRaw) : null;
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.connected(ws, who, since));
  }

  private async connected(ws: WebSocket, who: TerminalIdentity, since: number | null): Promise<void> {
    const client: Client = { id: randomUUID(), ws, who, alive: true };
    let joined = false;
    let recorded: Promise<unknown> | null = null;
    const gone = () => {
      if (this.byId.delete(client.id) && recorded) {
        const sockets = this.store.sockets!;
        void recorded.then(() => sockets.closed(client.id)).catch(() => {});
      }
      this.clients.delete(client);
      const mine = this.byTerminal.get(who.name);
      const i = mine?.indexOf(client) ?? -1;
      if (i >= 0) mine!.splice(i, 1);
      if (mine?.length === 0) this.byTerminal.delete(who.name);
    };
    ws.on('pong', () => { client.alive = true; });
    ws.on('close', gone);
    ws.on('error', gone);
    // Terminals only listen; anything they send is ignored.
    ws.on('message', () => {});
    this.limitPerTerminal(client);
    if (this.store.sockets && ws.readyState === WebSocket.OPEN) {
      // Every relay's sockets of this terminal count: the oldest beyond the limit close, wherever.
      this.byId.set(client.id, client);
      recorded = this.store.sockets.opened(who.name, client.id, this.o.perTerminal).then((victims) => {
        for (const v of victims) if (v.local) this.closeTooMany(v.id);
      }).catch((err) => this.log.warn({ terminal: who.name, err: (err as Error).message }, 'events: socket not recorded'));
    }
    this.pending++;
    try {
      const first = await this.firstMessages(since, who);
      if (ws.readyState !== WebSocket.OPEN) return;
      // The relay began to stop while this socket's first message was built: it goes too.
      if (this.closed) return void ws.close(1001, 'relay shutting down');
      // Synchronous from here to `add`: the ring covers everything after the first message's
      // cursor, so no change slips between it and the live messages.
      for (const m of first) send(ws, m);
      this.clients.add(client);
      joined = true;
      this.log.debug({ terminal: who.name, resumed: since !== null }, 'events connected');
    } catch (err) {
      this.log.warn({ terminal: who.name, err: (err as Error).message }, 'events: first message failed');
      ws.close(1011, 'relay error');
    } finally {
      this.pending--;
      if (!joined && ws.readyState === WebSocket.OPEN) ws.close(1011, 'relay error');
    }
  }

  /** A socket displaced by a newer one of its terminal (possibly on another relay). */
  private closeTooMany(id: string): void {
    const c = this.byId.get(id);
    if (!c) return;
    this.byId.delete(id);
    this.clients.delete(c);
    c.ws.close(CLOSE_TOO_MANY, 'too many connections for this terminal');
  }

  /** A terminal's oldest sockets beyond perTerminal make room for its new one. */
  private limitPerTerminal(client: Client): void {
    const mine = this.byTerminal.get(client.who.name) ?? [];
    this.byTerminal.set(client.who.name, mine);
    mine.push(client);
    while (mine.length > this.o.perTerminal) {
      const old = mine.shift()!;
      this.clients.delete(old);
      old.ws.close(CLOSE_TOO_MANY, 'too many connections for this terminal');
    }
  }

  /** The messages a new socket starts with, ending at a cursor the ring covers. */
  private async firstMessages(since: number | null, who: TerminalIdentity): Promise<(Msg | string)[]> {
    for (let attempt = 0; attempt < 3; attempt++) {
      // A cursor handed out by another relay may be ahead of what this one has delivered yet.
      if (since !== null && since > this.store.feed.cursor()) await this.store.feed.catchUp();
      if (since !== null && since >= this.ringFrom && since <= this.store.feed.cursor()) {
        // A short absence: the missed messages are still in memory.
        return this.ringAfter(since);
      }
      if (since !== null) {
        const upTo = this.store.feed.cursor();
        const read = await this.store.feed.changedRowsSince(since, this.o.replayMax);
        if (read) {
          // Rows read after upTo may already show later changes: those come from the ring (or
          // live) after upTo, so they are left to it — nothing sent twice, nothing skipped.
          const rows = read.filter((r) => r.cursor <= upTo);
          const msgs = await this.serialize(rows, (o, r) => JSON.stringify({ type: 'order.updated', order: o, cursor: r.cursor } satisfies RelayEvent));
          if (upTo >= this.ringFrom) return [...msgs, ...this.ringAfter(upTo)];
          continue; // the ring moved past us while building: start again
        }
      }
      const scope = who.role === 'manager' ? '*' : who.name;
      const snap = await this.snapshot(scope);
      if (snap.cursor >= this.ringFrom) return [since === null ? snap.plain : snap.resync, ...this.ringAfter(snap.cursor)];
      this.snapshotCache.delete(scope);
    }
    throw new Error('the change feed moved too fast to start a socket');
  }

  /** Ring messages after `cursor`, the latest per order only (as a replay from the database). */
  private ringAfter(cursor: number): Msg[] {
    let i = this.ring.length;
    while (i > 0 && this.ring[i - 1]!.cursor > cursor) i--;
    const tail = this.ring.slice(i);
    const last = new Map(tail.map((m, k) => [m.no, k]));
    return tail.filter((m, k) => last.get(m.no) === k).map((m) => m.msg);
  }

  /**
   * One build at a time per scope, reused for SNAPSHOT_REUSE_MS by everyone connecting. A
   * cashier's snapshot holds its own terminal's orders (so what every new socket costs does not
   * grow with the number of terminals); a manager's, every terminal's.
   */
  private snapshot(scope: string): Promise<Built> {
    const c = this.snapshotCache.get(scope);
    if (c && Date.now() - c.at < SNAPSHOT_REUSE_MS && c.cursor >= this.ringFrom) return Promise.resolve(c);
    let build = this.snapshotBuilds.get(scope);
    if (!build) {
      build = (async () => {
        try {
          const cursor = this.store.feed.cursor();
          const read = await this.store.feed.snapshotRows({ maxOpen: this.o.snapshotOpen, recent: this.o.snapshotRecent, terminal: scope === '*' ? undefined : scope });
          // As for a replay: a row read after `cursor` may show a later change, which the ring (or
          // the live feed) brings after the snapshot — not sent twice.
          const rows = read.filter((r) => r.cursor <= cursor);
          const parts = await this.serialize(rows, (o) => JSON.stringify(o));
          const tail = `"cursor":${cursor},"orders":[${parts.join(',')}]}`;
          const built = { cursor, at: Date.now(), plain: Buffer.from('{"type":"snapshot",' + tail), resync: Buffer.from('{"type":"snapshot","resync":true,' + tail) };
          this.snapshotCache.set(scope, built);
          return built;
        } finally {
          this.snapshotBuilds.delete(scope);
        }
      })();
      this.snapshotBuilds.set(scope, build);
    }
    return build;
  }

  /** Rows (read at one moment) → serialized orders, SLICE at a time with the loop free between. */
  private async serialize(rows: OrderRow[], fn: (o: Order, r: OrderRow) => string): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < rows.length; i += SLICE) {
      if (i > 0) await yieldLoop();
      // Sub-orders never change after creation: reading them now matches the rows' moment.
      const slice = rows.slice(i, i + SLICE);
      const orders = await this.store.orders.toOrders(slice);
      slice.forEach((r, k) => out.push(fn(orders[k]!, r)));
    }
    return out;
  }

  orderUpdated(order: Order, cursor: number): void {
    const msg = Buffer.from(JSON.stringify({ type: 'order.updated', order, cursor } satisfies RelayEvent));
    this.ring.push({ cursor, no: order.combine_out_trade_no, msg });
    if (this.ring.length > RING_MAX) this.ringFrom = this.ring.splice(0, this.ring.length - RING_MAX).pop()!.cursor;
    this.broadcast(msg);
  }

  alert(alert: Alert): void {
    const msg = Buffer.from(JSON.stringify({ type: 'alert', alert } satisfies RelayEvent));
    for (const c of this.clients) if (c.who.role === 'manager') send(c.ws, msg);
  }

  publish(event: RelayEvent): void {
    this.broadcast(Buffer.from(JSON.stringify(event)));
  }

  private broadcast(msg: Msg): void {
    for (const c of this.clients) send(c.ws, msg);
  }

  private heartbeat(): void {
    for (const [scope, c] of this.snapshotCache) if (Date.now() - c.at >= SNAPSHOT_REUSE_MS) this.snapshotCache.delete(scope);
    const msg = Buffer.from(JSON.stringify({ type: 'heartbeat', at: new Date().toISOString() } satisfies RelayEvent));
    for (const c of this.clients) {
      if (!c.alive) {
        c.ws.terminate();
        this.clients.delete(c);
        continue;
      }
      c.alive = false;
      c.ws.ping();
      send(c.ws, msg);
    }
  }

  /** Graceful shutdown: tell every terminal we are going away. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const c of this.clients) c.ws.close(1001, 'relay shutting down');
    this.clients.clear();
    this.wss.close();
  }
}

function send(ws: WebSocket, msg: Msg | string): void {
  if (ws.readyState !== WebSocket.OPEN) return;
  // A socket that does not read would hold every message in memory: drop it.
  if (ws.bufferedAmount > SLOW_BYTES) return void ws.close(CLOSE_TOO_SLOW, 'not reading');
  // Bytes go out as a text frame (JSON), encoded once for every socket.
  ws.send(msg, { binary: false });
}

function refuseUnavailable(socket: Duplex): void {
  const body = JSON.stringify({ code: 'DATABASE_UNAVAILABLE', message: 'the relay cannot reach its database; try again shortly' });
  socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 2\r\nConnection: close\r\n\r\n${body}`);
}

function refuse(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ code: status === 401 ? 'UNAUTHORIZED' : 'NOT_FOUND', message: text });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
