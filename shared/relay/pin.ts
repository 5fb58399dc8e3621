/**
 * The manager PIN at the counter: the manager sets a 4–8 digit PIN (stored as scrypt with a
 * random salt); a cashier terminal that presents it gets a short-lived elevation, an opaque
 * random value the relay keeps only as a SHA-256 hash in memory, bound to that terminal and
 * expiring server-side. Five misses from a terminal lock that terminal's attempts for a while;
 * misses and locks are kept in the database, so a restart does not reset them. Every attempt
 * is audited. A restart drops the elevations (the safe direction: unlock again).
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ManagerElevation, ManagerPinStatus } from '../contracts/counter-api';
import type { Db } from './db';
import { BadRequest, RelayError } from './errors';
import type { OrderStore } from './store';

export interface PinOptions {
  /** How long an elevation lasts (default 5 minutes). */
  elevationMs?: number;
  /** Misses before the terminal is locked (default 5). */
  maxFailures?: number;
  /** How long the lock lasts (default 15 minutes). */
  lockMs?: number;
  now?: () => number;
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

function derive(pin: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(pin, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

export function validPin(body: unknown): string {
  const pin = (body as { pin?: unknown } | null)?.pin;
  if (typeof pin !== 'string' || !/^\d{4,8}$/.test(pin)) throw new BadRequest('pin', 'must be 4 to 8 digits');
  return pin;
}

export class ManagerPin {
  private readonly elevations = new Map<string, { terminal: string; expiresMs: number }>();
  private readonly o: Required<PinOptions>;
  /** Unlock attempts in progress per terminal: scrypt is slow, so parallel guesses wait their turn. */
  private readonly busy = new Set<string>();

  constructor(private readonly db: Db, private readonly store: OrderStore, o: PinOptions = {}) {
    this.o = { elevationMs: 5 * 60_000, maxFailures: 5, lockMs: 15 * 60_000, now: Date.now, ...o };
  }

  status(): ManagerPinStatus {
    const r = this.db.prepare('SELECT set_at FROM manager_pin WHERE id = 1').get() as { set_at: string } | undefined;
    return { set: !!r, set_at: r?.set_at ?? null };
  }

  async set(pin: string, by: string): Promise<ManagerPinStatus> {
    const salt = randomBytes(16);
    const hash = await derive(pin, salt);
    const at = new Date(this.o.now()).toISOString();
    this.db.transaction(() => {
      this.db.prepare(`INSERT INTO manager_pin (id, hash, salt, set_at, set_by) VALUES (1, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, salt = excluded.salt, set_at = excluded.set_at, set_by = excluded.set_by`)
        .run(hash.toString('hex'), salt.toString('hex'), at, by);
      // A new PIN: earlier locks and misses no longer mean anything; elevations from the old PIN end.
      this.db.prepare('DELETE FROM pin_guard').run();
    })();
    this.elevations.clear();
    this.store.audit(by, 'manager.pin.set', null, {});
    return this.status();
  }

  /** A cashier terminal presents the PIN; answers an elevation or 403/423. */
  async unlock(terminal: string, pin: string): Promise<ManagerElevation> {
    if (this.busy.has(terminal)) throw new RelayError(429, 'PIN_BUSY', 'an unlock from this terminal is being checked; try again');
    this.busy.add(terminal);
    try {
      return await this.unlockInner(terminal, pin);
    } finally {
      this.busy.delete(terminal);
    }
  }

  private async unlockInner(terminal: string, pin: string): Promise<ManagerElevation> {
    const now = this.o.now();
    const guard = this.db.prepare('SELECT failures, locked_until_ms FROM pin_guard WHERE terminal = ?').get(terminal) as
      { failures: number; locked_until_ms: number } | undefined;
    if (guard && guard.locked_until_ms > now) {
      const retry = Math.ceil((guard.locked_until_ms - now) / 1000);
      this.store.audit(terminal, 'manager.unlock', null, { outcome: 'PIN_LOCKED' });
      throw new RelayError(423, 'PIN_LOCKED', `too many wrong PINs from this terminal; try again in ${retry}s`, { retry_after_seconds: retry });
    }
    const row = this.db.prepare('SELECT hash, salt FROM manager_pin WHERE id = 1').get() as { hash: string; salt: string } | undefined;
    if (!row) throw new RelayError(409, 'PIN_NOT_SET', 'the manager has not set a PIN');
    const got = await derive(pin, Buffer.from(row.salt, 'hex'));
    if (!timingSafeEqual(got, Buffer.from(row.hash, 'hex'))) {
      // A lock stores 0 misses: after it ends the count starts again.
      const failures = (guard?.failures ?? 0) + 1;
      const locked = failures >= this.o.maxFailures;
      this.db.prepare(`INSERT INTO pin_guard (terminal, failures, locked_until_ms) VALUES (?, ?, ?)
        ON CONFLICT (terminal) DO UPDATE SET failures = excluded.failures, locked_until_ms = excluded.locked_until_ms`)
        .run(terminal, locked ? 0 : failures, locked ? now + this.o.lockMs : 0);
      this.store.audit(terminal, 'manager.unlock', null, { outcome: locked ? 'LOCKED_NOW' : 'WRONG_PIN', failures });
      if (locked) {
        const retry = Math.ceil(this.o.lockMs / 1000);
        throw new RelayError(423, 'PIN_LOCKED', `too many wrong PINs from this terminal; try again in ${retry}s`, { retry_after_seconds: retry });
      }
      throw new RelayError(403, 'WRONG_PIN', `wrong PIN (${this.o.maxFailures - failures} tries left before a lock)`, { tries_left: this.o.maxFailures - failures });
    }
    this.db.prepare('DELETE FROM pin_guard WHERE terminal = ?').run(terminal);
    const elevation = randomBytes(32).toString('base64url');
    const expiresMs = now + this.o.elevationMs;
    this.sweep(now);
    this.elevations.set(sha(elevation), { terminal, expiresMs });
    this.store.audit(terminal, 'manager.unlock', null, { outcome: 'OK', expires_at: new Date(expiresMs).toISOString() });
    return { elevation, expires_at: new Date(expiresMs).toISOString() };
  }

  /** Ends an elevation early (the terminal locks the manager screen again). */
  lock(terminal: string, elevation: string | undefined): void {
    if (!elevation) return;
    const k = sha(elevation);
    if (this.elevations.get(k)?.terminal === terminal) this.elevations.delete(k);
  }

  /** Whether `elevation` is live and was given to `terminal`. */
  check(terminal: string, elevation: string | undefined): boolean {
    if (!elevation || elevation.length > 128) return false;
    const e = this.elevations.get(sha(elevation));
    if (!e) return false;
    if (e.expiresMs <= this.o.now()) {
      this.elevations.delete(sha(elevation));
      return false;
    }
    return e.terminal === terminal;
  }

  private sweep(now: number): void {
    for (const [k, e] of this.elevations) if (e.expiresMs <= now) this.elevations.delete(k);
  }
}
