import { describe, expect, it } from 'vitest';
import { ApiError, BillError, classify, TransportError, ValidationError, VerificationError } from '../../shared/wechatpay/errors';
import { shouldRetry } from '../../shared/wechatpay/transport';

describe('one classification of failures (13.13)', () => {
  it('a code means the same with or without underscores: no alias lists anywhere', () => {
    for (const [a, b, kind] of [['ORDERPAID', 'ORDER_PAID', 'ORDER_PAID'], ['USERPAYING', 'USER_PAYING', 'USER_PAYING'], ['SYSTEMERROR', 'SYSTEM_ERROR', 'SERVER'], ['ORDERNOTEXIST', 'ORDER_NOT_EXIST', 'NOT_FOUND']] as const) {
      expect(classify(new ApiError(400, a, 'x')).kind).toBe(kind);
      expect(classify(new ApiError(400, b, 'x')).kind).toBe(kind);
      expect(classify(new ApiError(400, b.toLowerCase(), 'x')).kind).toBe(kind);
    }
    expect(classify(new ApiError(404, 'RESOURCE_NOT_EXISTS', 'x')).kind).toBe('NOT_FOUND');
    expect(classify(new ApiError(400, 'ORDER_CLOSED', 'x')).kind).toBe('ORDER_CLOSED');
    expect(classify(new ApiError(202, 'USER_PAYING', 'x')).kind).toBe('USER_PAYING');
  });

  it('retry now only what can succeed on a second identical request; bills being generated later; follow up what is ambiguous', () => {
    const cases: [unknown, string, boolean, boolean, boolean][] = [
      // error, kind, retryNow, retryLater, ambiguous
      [new TransportError('TIMEOUT', 'x'), 'NETWORK', true, false, true],
      [new ApiError(500, 'SYSTEM_ERROR', 'x'), 'SERVER', true, false, true],
      [new ApiError(503, 'WHATEVER', 'x'), 'SERVER', true, false, true],
      [new ApiError(429, 'WHATEVER', 'x'), 'RATE_LIMITED', true, false, false],
      [new ApiError(403, 'FREQUENCY_LIMITED', 'x'), 'RATE_LIMITED', true, false, false],
      [new ApiError(400, 'STATEMENT_CREATING', 'x'), 'STATEMENT_NOT_READY', false, true, false],
      [new ApiError(400, 'NO_STATEMENT_EXIST', 'x'), 'NO_STATEMENT', false, false, false],
      [new ApiError(401, 'SIGN_ERROR', 'x'), 'REFUSED', false, false, false],
      [new ApiError(400, 'PARAM_ERROR', 'x'), 'REFUSED', false, false, false],
      [new VerificationError('SIGNATURE_PROBE', 'x'), 'SIGNATURE_PROBE', true, false, false],
      [new VerificationError('SIGNATURE_INVALID', 'x'), 'REFUSED', false, false, false],
      [new ValidationError('/x', 'bad'), 'REFUSED', false, false, false],
      [new BillError('HASH_MISMATCH', 'x'), 'REFUSED', false, false, false],
      [new Error('a bug'), 'INTERNAL', false, false, true],
    ];
    for (const [err, kind, now, later, ambiguous] of cases) {
      expect({ code: (err as { code?: string }).code, ...classify(err) }).toEqual({ code: (err as { code?: string }).code, kind, retryNow: now, retryLater: later, ambiguous });
      expect(shouldRetry(err)).toBe(now);
      if (err instanceof ApiError) expect(err.retryable).toBe(now);
    }
  });
});
