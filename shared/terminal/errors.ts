/**
 * Errors of the terminal services. They cross IPC and HTTP as plain data (`ErrorBody`), so every
 * error the renderer can see is a TerminalError with a stable `code`.
 */
import type { ErrorBody } from '../contracts/relay-api';

export class TerminalError extends Error {
  readonly code: string;
  readonly field?: string;
  readonly retry_after_seconds?: number;
  readonly status?: number;

  constructor(code: string, message: string, extra: { field?: string; retry_after_seconds?: number; status?: number } = {}) {
    super(message);
    this.name = 'TerminalError';
    this.code = code;
    if (extra.field !== undefined) this.field = extra.field;
    if (extra.retry_after_seconds !== undefined) this.retry_after_seconds = extra.retry_after_seconds;
    if (extra.status !== undefined) this.status = extra.status;
  }

  toBody(): ErrorBody {
    const b: ErrorBody = { code: this.code, message: this.message };
    if (this.field !== undefined) b.field = this.field;
    if (this.retry_after_seconds !== undefined) b.retry_after_seconds = this.retry_after_seconds;
    return b;
  }
}

/** Any thrown value → the wire shape; unknown errors keep their message but get a generic code. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof TerminalError) return err.toBody();
  if (err && typeof err === 'object' && typeof (err as ErrorBody).code === 'string' && typeof (err as ErrorBody).message === 'string') {
    const e = err as ErrorBody;
    const b: ErrorBody = { code: e.code, message: e.message };
    if (typeof e.field === 'string') b.field = e.field;
    if (typeof e.retry_after_seconds === 'number') b.retry_after_seconds = e.retry_after_seconds;
    return b;
  }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}
