/** Terminals, alerts and the audit log on PostgreSQL (as auth.ts and store.ts do on SQLite). */
import type { Alert } from '../../contracts/relay-api';
import type { AlertsRepo, AuditRepo, TerminalRecord, TerminalsRepo } from '../repo-types';
import type { PgCore } from './core';

/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = '23505';

export class PgTerminals implements TerminalsRepo {
  constructor(private readonly core: PgCore) {}

  async create(name: string, role: 'cashier' | 'manager', tokenHash: string, at: string): Promise<boolean> {
    try {
      await this.core.q('INSERT INTO terminals (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4)', [name, role, tokenHash, at]);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) return false;
      throw err;
    }
  }

  async byTokenHash(tokenHash: string): Promise<TerminalRecord | null> {
    const [r] = await this.core.q<TerminalRecord>('SELECT name, role FROM terminals WHERE token_hash = $1 AND revoked_at IS NULL', [tokenHash]);
    return r ?? null;
  }
}

export class PgAlerts implements AlertsRepo {
  constructor(private readonly core: PgCore) {}

  async add(kind: string, no: string | null, message: string, dedupeKey: string | null, now = Date.now()): Promise<Alert | null> {
    const created_at = new Date(now).toISOString();
    const [r] = await this.core.q<{ id: string }>(
      'INSERT INTO alerts (kind, combine_out_trade_no, message, created_at, dedupe_key) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id',
      [kind, no, message, created_at, dedupeKey]);
    return r ? { id: Number(r.id), kind, combine_out_trade_no: no, message, created_at } : null;
  }

  async list(limit: number): Promise<Alert[]> {
    const rows = await this.core.q<Alert & { id: string }>('SELECT id, kind, combine_out_trade_no, message, created_at FROM alerts ORDER BY id DESC LIMIT $1', [limit]);
    return rows.map((r) => ({ ...r, id: Number(r.id) }));
  }
}

export class PgAudit implements AuditRepo {
  constructor(private readonly core: PgCore) {}

  async add(terminal: string, action: string, target: string | null, detail: unknown): Promise<void> {
    await this.core.q('INSERT INTO audit_log (at, terminal, action, target, detail) VALUES ($1, $2, $3, $4, $5)',
      [new Date().toISOString(), terminal, action, target, detail === undefined ? null : JSON.stringify(detail)]);
  }
}
