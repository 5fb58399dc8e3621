/** The local WeChat Pay APIv3 simulator: `initSandbox` writes keys, `startSandbox` serves. */
export { initSandbox, type InitOptions, type InitResult, type InitMerchant, type ParticipantMode } from './init';
export { startSandbox, SandboxServer, type SandboxOptions, type RunningSandbox } from './server';
export { loadSandboxConfig, type SandboxConfig, type SandboxConfigFile, type MerchantKeys as SandboxMerchantKeys, type KeyMode } from './config';
export { RETRY_SCHEDULE_SECONDS, REPLY_TIMEOUT_MS } from './notifier';
export { DOWNLOAD_VALIDITY_MS } from './bills';
export { FAULT_KINDS, type FaultKind } from './faults';
export { SandboxError, ApiFailure } from './errors';
