/**
 * WebSocket `/v1/events`: token checked at the upgrade (401 before any WebSocket exists),
 * then a snapshot, or — with `?since=<cursor>` — every order that changed while away, then
 * live messages. Each message is serialized once and sent to every socket. Ping/pong drops
 * dead sockets; a `heartbeat` message lets terminals detect a dead relay.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket } from 'ws';
import type { Alert, Order, RelayEvent } from '../contracts/relay-api';
import type { Authenticator, TerminalIdentity } from './auth';
import type { Logger } from './log';
import type { OrderStore } from './store';

interface Client {
  ws: WebSocket;
  who: TerminalIdentity;
  alive: boolean;
}

export class EventHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly clients = new Set<Client>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: OrderStore,
    private readonly auth: Authenticator,
    private readonly log: Logger,
    heartbeatMs: number,
  ) {
    this.timer = setInterval(() => this.heartbeat(), heartbeatMs);
    this.timer.unref();
    store.onChange((change) => {
      // Nobody listening: the order is neither read nor serialized.
      if (this.clients.size > 0) this.orderUpdated(change.order, change.cursor);
    });
  }

  get size(): number {
    return this.clients.size;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://relay');
    if (url.pathname !== '/v1/events') return refuse(socket, 404, 'Not Found');
    const who = this.auth.identify(req.headers.authorization);
    if (!who) return refuse(socket, 401, 'Unauthorized');
    const sinceRaw = url.searchParams.get('since');
    const since = sinceRaw !== null && /^\d{1,15}$/.test(sinceRaw) ? Number(sinceRaw) : null;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, who, since));
  }

  private connected(ws: WebSocket, who: TerminalIdentity, since: number | null): void {
    const client: Client = { ws, who, alive: true };
    ws.on('pong', () => { client.alive = true; });
    ws.on('close', () => this.clients.delete(client));
    ws.on('error', () => this.clients.delete(client));
    // Terminals only listen; anything they send is ignored.
    ws.on('message', () => {});
    // Synchronous from here to `add`: no change can slip between the catch-up and live messages.
    const missed = since !== null ? this.store.changesSince(since) : null;
    if (missed) {
      for (const m of missed) send(ws, JSON.stringify({ type: 'order.updated', order: m.order, cursor: m.cursor } satisfies RelayEvent));
    } else {
      send(ws, JSON.stringify({ type: 'snapshot', orders: this.store.snapshot(), cursor: this.store.cursor() } satisfies RelayEvent));
    }
    this.clients.add(client);
    this.log.debug({ terminal: who.name, resumed: missed !== null }, 'events connected');
  }

  orderUpdated(order: Order, cursor: number): void {
    if (this.clients.size === 0) return; // nobody listening: skip serializing
    this.broadcast(JSON.stringify({ type: 'order.updated', order, cursor } satisfies RelayEvent));
  }

  alert(alert: Alert): void {
    const msg = JSON.stringify({ type: 'alert', alert } satisfies RelayEvent);
    for (const c of this.clients) if (c.who.role === 'manager') send(c.ws, msg);
  }

  publish(event: RelayEvent): void {
    this.broadcast(JSON.stringify(event));
  }

  private broadcast(msg: string): void {
    for (const c of this.clients) send(c.ws, msg);
  }

  private heartbeat(): void {
    const msg = JSON.stringify({ type: 'heartbeat', at: new Date().toISOString() } satisfies RelayEvent);
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
    clearInterval(this.timer);
    for (const c of this.clients) c.ws.close(1001, 'relay shutting down');
    this.clients.clear();
    this.wss.close();
  }
}

function send(ws: WebSocket, msg: string): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(msg);
}

function refuse(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ code: status === 401 ? 'UNAUTHORIZED' : 'NOT_FOUND', message: text });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
