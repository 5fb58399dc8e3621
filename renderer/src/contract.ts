/**
 * The one place the renderer takes the contract's types from: the typed terminal API only
 * (shared/contracts/terminal-api.ts), which re-exports the relay shapes the screens need.
 */
export type {
  Alert, ApiResult, ConnectionState, CreateOrderRequest, DailyTakings, ErrorBody, Language, Order, OrderState,
  PreloadApi, PrinterFailure, PrintJob, PrintKind, ReconciliationReport, SaveSettingsResult, SessionInfo, Settings,
  SettingsErrors, SettingsUpdate, SubMerchantInfo, TerminalApi, TerminalEvent, TerminalMethod, TokenSetting,
} from '../../shared/contracts/terminal-api';
export { FINAL_STATES, ORDER_STATES, TERMINAL_METHODS } from '../../shared/contracts/terminal-api';
// Counter operations (order timeline, shifts, day-end, manager PIN).
export type {
  CsvExport, DayEndMerchant, DayEndReport, ManagerPinStatus, MerchantFigures, OrderTimeline, RefundFigures, ReportTotals, Shift,
  ShiftReport, TimelineEntry,
} from '../../shared/contracts/terminal-api';
// Refunds per sub-order.
export type { CreateRefundRequest, Refund, RefundStatus, SubOrder } from '../../shared/contracts/terminal-api';
