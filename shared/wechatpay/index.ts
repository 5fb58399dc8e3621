/** Public surface of the APIv3 client and the shared protocol pieces (sandbox, relay, tests). */
export * from './errors';
export * from './sign';
export * from './verify';
export * from './aead';
export * from './keys';
export * from './credentials';
export * from './time';
export * from './money';
export * from './models';
export * from './bill-format';
export * from './bill-writer';
export * from './bill-parser';
export { verifiedBillStream, checkBillApplyResponse } from './bill';
export * from './certificates';
export * from './combine';
export * from './notification';
export { Transport, apiErrorFrom, shouldRetry, type TransportOptions, type ApiRequest, type RawResponse } from './transport';
export * from './client';
