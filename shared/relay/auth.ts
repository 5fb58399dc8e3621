/**
 * Terminals and their bearer tokens. A token is 32 random bytes (base64url), shown once;
 * only its SHA-256 is stored, so a copy of the database does not let anyone in.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { TerminalsRepo } from './repo-types';
import { RelayError } from './errors';
import { textProblem } from './validate';

export type Role = 'cashier' | 'manager';
export interface TerminalIdentity {
  name: string;
  role: Role;
  /** A cashier terminal acting as manager through a live manager-PIN elevation. */
  elevated?: boolean;
}

export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const NAME = /^[\p{L}\p{N} _.-]{1,64}$/u;

export async function createTerminal(terminals: TerminalsRepo, name: string, role: string): Promise<string> {
  // NAME admits letters of any script; the relay's one text rule still applies (it is shown and printed).
  if (!NAME.test(name) || textProblem(name)) throw new RelayError(400, 'INVALID_NAME', 'terminal name: 1–64 letters, digits, space, _ . -');
  if (role !== 'cashier' && role !== 'manager') throw new RelayError(400, 'INVALID_ROLE', `role must be cashier or manager, got ${JSON.stringify(role)}`);
  const token = randomBytes(32).toString('base64url');
  // Unique name and token hash in the database: a name taken through another relay is refused too.
  if (!(await terminals.create(name, role, hashToken(token), new Date().toISOString()))) throw new RelayError(409, 'TERMINAL_EXISTS', `a terminal named ${name} exists`);
  return token;
}

export class Authenticator {
  /**
   * Checks an `X-Manager-Elevation` value for a cashier terminal (manager PIN, pin.ts). Elevations
   * live in the database, so one given through any relay counts on every relay.
   */
  elevations: ((terminal: string, elevation: string | undefined) => Promise<boolean>) | null = null;
  constructor(private readonly terminals: TerminalsRepo) {}

  /** The terminal behind an `Authorization: Bearer` header, or null. */
  async identify(header: string | undefined): Promise<TerminalIdentity | null> {
    if (!header) return null;
    // Auth schemes are case-insensitive (RFC 9110 §11.1): `bearer x` is as good as `Bearer x`.
    const m = /^Bearer\s+([A-Za-z0-9_-]{16,128})\s*$/i.exec(header);
    if (!m) return null;
    // Tokens live in the database: one made through any relay works on every relay.
    return this.terminals.byTokenHash(hashToken(m[1]!));
  }

  /**
   * `elevation`: the request's `X-Manager-Elevation` header. A cashier terminal carrying a live
   * elevation given to it (manager PIN) passes a manager check, marked `elevated`.
   */
  async require(header: string | undefined, role: Role = 'cashier', elevation?: string | string[]): Promise<TerminalIdentity> {
    const who = await this.identify(header);
    if (!who) throw new RelayError(401, 'UNAUTHORIZED', 'missing or invalid bearer token');
    // Managers can do everything cashiers can.
    if (role === 'manager' && who.role !== 'manager') {
      const e = typeof elevation === 'string' ? elevation : undefined;
      if (e && (await this.elevations?.(who.name, e))) return { name: who.name, role: 'manager', elevated: true };
      throw new RelayError(403, 'FORBIDDEN', 'this needs a manager terminal');
    }
    return who;
  }
}
