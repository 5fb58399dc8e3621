/**
 * The manager PIN at the counter: the manager sets a 4–8 digit PIN (stored as scrypt with a
 * random salt); a cashier terminal that presents it gets a short-lived elevation, an opaque
 * random value the relay keeps only as a SHA-256 hash in the store, bound to that terminal and
 * expiring server-side — so an elevation one relay gave works on every relay sharing the
 * database, and a lock or a new PIN ends it on all of them. Five misses from a terminal lock
 * that terminal's attempts for a while; misses and locks are counted in the database (each miss
 * once, whichever relay saw it), so neither a restart nor a second relay resets them. Every
 * attempt is audited.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ManagerElevation, ManagerPinStatus } from '../contracts/counter-api';
import { BadRequest, RelayError } from './errors';
import type { PinRepo } from './repo-counter';
import type { AuditRepo } from './repo-types';

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
  private readonly o: Required<PinOptions>;
  /** Unlock attempts in progress per terminal on this relay: scrypt is slow, so parallel guesses wait their turn. */
  private readonly busy = new Set<string>();

  constructor(private readonly repo: PinRepo, private readonly audit: AuditRepo, o: PinOptions = {}) {
    this.o = { elevationMs: 5 * 60_000, maxFailures: 5, lockMs: 15 * 60_000, now: Date.now, ...o };
  }

  async status(): Promise<ManagerPinStatus> {
    const r = await this.repo.get();
    return { set: !!r, set_at: r?.set_at ?? null };
  }

  async set(pin: string, by: string): Promise<ManagerPinStatus> {
    const salt = randomBytes(16);
    const hash = await derive(pin, salt);
    const at = new Date(this.o.now()).toISOString();
    // A new PIN: earlier locks and misses no longer mean anything; elevations from the old PIN end (same transaction).
    await this.repo.set({ hash: hash.toString('hex'), salt: salt.toString('hex'), set_at: at, set_by: by });
    await this.audit.add(by, 'manager.pin.set', null, {});
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

  private async locked(terminal: string, untilMs: number, now: number, outcome: string, extra: Record<string, unknown> = {}): Promise<never> {
    const retry = Math.ceil((untilMs - now) / 1000);
    await this.audit.add(terminal, 'manager.unlock', null, { outcome, ...extra });
    throw new RelayError(423, 'PIN_LOCKED', `too many wrong PINs from this terminal; try again in ${retry}s`, { retry_after_seconds: retry });
  }

  private async unlockInner(terminal: string, pin: string): Promise<ManagerElevation> {
    const now = this.o.now();
    const guard = await this.repo.guard(terminal);
    if (guard && guard.locked_until_ms > now) return this.locked(terminal, guard.locked_until_ms, now, 'PIN_LOCKED');
    const row = await this.repo.get();
    if (!row) throw new RelayError(409, 'PIN_NOT_SET', 'the manager has not set a PIN');
    const got = await derive(pin, Buffer.from(row.salt, 'hex'));
    if (!timingSafeEqual(got, Buffer.from(row.hash, 'hex'))) {
      // Counted in one statement: a miss on another relay at the same moment counts too.
      const m = await this.repo.miss(terminal, this.o.maxFailures, now + this.o.lockMs, now);
      if (m.kind === 'locked') return this.locked(terminal, m.locked_until_ms, now, 'PIN_LOCKED');
      const { failures, lockedNow } = m;
      if (lockedNow) return this.locked(terminal, now + this.o.lockMs, now, 'LOCKED_NOW', { failures });
      await this.audit.add(terminal, 'manager.unlock', null, { outcome: 'WRONG_PIN', failures });
      throw new RelayError(403, 'WRONG_PIN', `wrong PIN (${this.o.maxFailures - failures} tries left before a lock)`, { tries_left: this.o.maxFailures - failures });
    }
    const elevation = randomBytes(32).toString('base64url');
    const expiresMs = now + this.o.elevationMs;
    if (!(await this.repo.elevate(terminal, sha(elevation), expiresMs, now))) {
      // Locked while this PIN was being checked (misses on another relay): the lock wins.
      const g = await this.repo.guard(terminal);
      return this.locked(terminal, g?.locked_until_ms ?? now + this.o.lockMs, now, 'PIN_LOCKED');
    }
    await this.audit.add(terminal, 'manager.unlock', null, { outcome: 'OK', expires_at: new Date(expiresMs).toISOString() });
    return { elevation, expires_at: new Date(expiresMs).toISOString() };
  }

  /** Ends an elevation early (the terminal locks the manager screen again), on every relay. */
  async lock(terminal: string, elevation: string | undefined): Promise<void> {
    if (!elevation || elevation.length > 128) return;
    await this.repo.endElevation(terminal, sha(elevation));
  }

  /** Whether `elevation` is live and was given to `terminal` (by any relay sharing the store). */
  async check(terminal: string, elevation: string | undefined): Promise<boolean> {
    if (!elevation || elevation.length > 128) return false;
    const e = await this.repo.elevation(sha(elevation));
    // Expired rows are swept when the next elevation is given; until then the clock refuses them.
    return !!e && e.expires_ms > this.o.now() && e.terminal === terminal;
  }
}
