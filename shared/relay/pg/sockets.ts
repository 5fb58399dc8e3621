/**
 * RELAY_EVENTS_PER_TERMINAL across relays: every relay records its `/v1/events` sockets in
 * `event_sockets`; a new socket beyond the limit closes its terminal's oldest ones, wherever they
 * are. A socket on another relay is closed by that relay, asked through NOTIFY on SOCKETS_CHANNEL
 * (payload `<relay id> <socket id>`), which every relay LISTENs on with one dedicated connection.
 * A relay that died leaves rows behind: they are simply deleted when they would be closed.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { SocketsRepo } from '../repo-types';
import type { PgCore } from './core';

export const SOCKETS_CHANNEL = 'relay_sockets';

export class PgSockets implements SocketsRepo {
  /** This process among the relays. */
  readonly relay = randomUUID();
  private readonly listeners: ((id: string) => void)[] = [];
  private client: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly core: PgCore, private readonly url: string) {}

  async start(): Promise<void> {
    await this.listen();
  }

  private async listen(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url, application_name: 'relay-sockets' });
    c.on('error', () => this.reconnect(c));
    c.on('end', () => this.reconnect(c));
    c.on('notification', (n) => {
      const [relay, id] = (n.payload ?? '').split(' ');
      if (relay !== this.relay || !id) return;
      for (const l of this.listeners) l(id);
    });
    await c.connect();
    await c.query(`LISTEN ${SOCKETS_CHANNEL}`);
    this.client = c;
  }

  /** A lost listening connection comes back by itself (a close request missed meanwhile only leaves one socket too many for a while). */
  private reconnect(c: pg.Client): void {
    if (this.client !== c && this.client !== null) return;
    this.client = null;
    c.removeAllListeners('notification');
    c.end().catch(() => {});
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.stopped) this.listen().catch(() => this.reconnect(c));
    }, 1000);
    this.retry.unref();
  }

  listening(): boolean {
    return this.client !== null;
  }

  async opened(terminal: string, id: string, limit: number, now = Date.now()): Promise<{ id: string; local: boolean }[]> {
    return this.core.tx(async (t) => {
      // One terminal's sockets are counted one connect at a time (two relays connecting the same
      // terminal at once must not both keep theirs beyond the limit).
      await t.q('SELECT pg_advisory_xact_lock(hashtext($1))', [`relay-sockets:${terminal}`]);
      await t.q('INSERT INTO event_sockets (id, terminal, relay, opened_ms) VALUES ($1, $2, $3, $4)', [id, terminal, this.relay, now]);
      const rows = await t.q<{ id: string; relay: string }>(
        'SELECT id, relay FROM event_sockets WHERE terminal = $1 ORDER BY opened_ms DESC, id DESC OFFSET $2', [terminal, limit]);
      if (rows.length) await t.q('DELETE FROM event_sockets WHERE id = ANY($1)', [rows.map((r) => r.id)]);
      return rows.reverse().map((r) => ({ id: r.id, local: r.relay === this.relay, relay: r.relay }));
    }).then((victims) => {
      for (const v of victims as { id: string; local: boolean; relay: string }[]) {
        if (!v.local) void this.core.q('SELECT pg_notify($1, $2)', [SOCKETS_CHANNEL, `${v.relay} ${v.id}`]).catch(() => {});
      }
      return victims.map(({ id: vid, local }) => ({ id: vid, local }));
    });
  }

  async closed(id: string): Promise<void> {
    await this.core.q('DELETE FROM event_sockets WHERE id = $1', [id]);
  }

  onCloseRequest(l: (id: string) => void): void {
    this.listeners.push(l);
  }

  /** Stops listening and forgets this relay's sockets (they close with it). */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.client;
    this.client = null;
    await this.core.q('DELETE FROM event_sockets WHERE relay = $1', [this.relay]).catch(() => {});
    await c?.end().catch(() => {});
  }
}
