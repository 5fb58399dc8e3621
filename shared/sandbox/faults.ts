/**
 * Fault injection for tests: armed through `POST /sandbox/control/faults` (consumed `count` times,
 * matched by path prefix and method) or per request with `X-Sandbox-Fault: <kind>`.
 */
import { ApiFailure } from './errors';

export const FAULT_KINDS = ['SYSTEM_ERROR', 'FREQUENCY_LIMITED', 'SLOW', 'BAD_SIGNATURE'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  kind: FaultKind;
  path?: string;
  method?: string;
  count: number;
  delay_ms?: number;
}

/** SLOW without delay_ms: longer than the usual 5 s client timeouts would be unkind to tests. */
export const DEFAULT_SLOW_MS = 3000;

export class Faults {
  private list: Fault[] = [];

  arm(body: unknown): Fault {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    if (!FAULT_KINDS.includes(b.kind as FaultKind)) {
      throw new ApiFailure(400, 'PARAM_ERROR', `kind must be one of ${FAULT_KINDS.join(', ')}`, { field: '/kind' });
    }
    if (b.path !== undefined && (typeof b.path !== 'string' || !b.path.startsWith('/'))) throw new ApiFailure(400, 'PARAM_ERROR', 'path must be a path prefix starting with /', { field: '/path' });
    if (b.method !== undefined && typeof b.method !== 'string') throw new ApiFailure(400, 'PARAM_ERROR', 'method must be a string', { field: '/method' });
    const count = b.count ?? 1;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) throw new ApiFailure(400, 'PARAM_ERROR', 'count must be a positive integer', { field: '/count' });
    if (b.delay_ms !== undefined && (typeof b.delay_ms !== 'number' || b.delay_ms < 0 || b.delay_ms > 120_000)) {
      throw new ApiFailure(400, 'PARAM_ERROR', 'delay_ms must be 0..120000', { field: '/delay_ms' });
    }
    const f: Fault = { kind: b.kind as FaultKind, path: b.path as string | undefined, method: (b.method as string | undefined)?.toUpperCase(), count, delay_ms: b.delay_ms as number | undefined };
    this.list.push(f);
    return f;
  }

  clear(): void {
    this.list = [];
  }

  armed(): Fault[] {
    return this.list.map((f) => ({ ...f }));
  }

  /** The fault for this request, if any; an armed one is consumed. */
  take(method: string, path: string, header: string | undefined): Fault | undefined {
    if (header) {
      const kind = header.trim().toUpperCase() as FaultKind;
      if (FAULT_KINDS.includes(kind)) return { kind, count: 1 };
    }
    const i = this.list.findIndex((f) => (!f.path || path.startsWith(f.path)) && (!f.method || f.method === method));
    if (i < 0) return undefined;
    const f = this.list[i]!;
    if (--f.count <= 0) this.list.splice(i, 1);
    return f;
  }
}
