/** Errors the relay answers with: a status, a stable `code`, and the contract's JSON body. */
import type { ErrorBody } from '../contracts/relay-api';

export class RelayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Partial<ErrorBody> & Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'RelayError';
  }
  body(): ErrorBody & Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.extra };
  }
}

/** 400 naming the JSON field at fault. */
export class BadRequest extends RelayError {
  constructor(field: string, message: string) {
    super(400, 'INVALID_FIELD', `${field}: ${message}`, { field });
  }
}
