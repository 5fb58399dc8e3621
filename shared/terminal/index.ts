/** Terminal services: plain Node modules wrapped by Electron's main process and the web host. */
export { startTerminalServices, type TerminalServices, type TerminalServicesOptions } from './services';
export { startWebHost, CSP, type WebHost, type WebHostOptions } from './web-host';
export { SettingsStore, validateSettings, DEFAULT_SETTINGS } from './settings';
export { RelayClient, RelayEvents } from './relay-client';
export { dispatch, validateArgs, isTerminalMethod } from './api-schema';
export { TerminalError, toErrorBody } from './errors';
export { PrintQueue } from './printing/queue';
export { renderEscPos, nativeQr, rasterQr, encodeText, qrModuleSize } from './printing/escpos';
export { buildReceipt } from './printing/receipt';
export { renderPreview } from './printing/preview';
export { sendToPrinter, classifyPrinterError, PrinterError } from './printing/transport';
