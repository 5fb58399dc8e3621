/** Errors of the simulator itself (setup, state), distinct from the API errors it answers with. */
export class SandboxError extends Error {
  readonly code: string;
  constructor(code: string, message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'SandboxError';
    this.code = code;
  }
}

/**
 * An APIv3 error answer: status plus the `{"code","message","detail"}` body WeChat Pay sends.
 * Thrown by handlers, turned into a response by the server.
 */
export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: Record<string, unknown> | undefined;
  constructor(status: number, code: string, message: string, detail?: Record<string, unknown>) {
    super(message);
    this.name = 'ApiFailure';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }

  body(): { code: string; message: string; detail?: Record<string, unknown> } {
    return this.detail ? { code: this.code, message: this.message, detail: this.detail } : { code: this.code, message: this.message };
  }
}

/** PARAM_ERROR naming the field as a JSON pointer, as WeChat Pay does in `detail.field`. */
export function paramError(field: string, issue: string, value?: unknown): ApiFailure {
  const detail: Record<string, unknown> = { field, issue, location: 'body' };
  if (value !== undefined) detail.value = value;
  return new ApiFailure(400, 'PARAM_ERROR', `${field} ${issue}`, detail);
}
