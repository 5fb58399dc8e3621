/**
 * The typed terminal API: the only thing the renderer knows. Served two ways with the same
 * shapes: Electron IPC (preload exposes `window.pos`) and the loopback web host
 * (`POST /api/<method>` with `{"args": [...]}`, events over `GET /api/events` as
 * Server-Sent Events, every call carrying the web host's session cookie).
 * Pure types and constants: no Node, no Electron.
 */
import type {
  Alert, CreateOrderRequest, CreateRefundRequest, ErrorBody, Order, OrderState, ReconciliationReport, Refund, RelayEvent, SubMerchantInfo,
} from './relay-api';

// What the screens need of the relay's shapes, re-exported so the renderer imports this file only.
export type {
  Alert, BillMerchantTotals, BillMismatch, CatalogItem, CreateOrderRequest, CreateOrderSubOrder, ErrorBody, MismatchKind,
  Order, OrderCreation, OrderState, ReconciliationReport, RelayEvent, RelayEventType, SubMerchantInfo, SubOrder,
  CreateRefundRequest, Refund, RefundStatus,
} from './relay-api';
export { FINAL_STATES, ORDER_STATES } from './relay-api';
export type {
  DayEndBillStatus, DayEndMerchant, DayEndReport, ManagerPinStatus, MerchantFigures, OrderTimeline, RefundFigures, ReportTotals, Shift,
  ShiftReport, TimelineEntry,
} from './counter-api';
import type { DayEndReport, ManagerPinStatus, OrderTimeline, Shift, ShiftReport } from './counter-api';

export type Language = 'zh-CN' | 'en';
export type PaperWidth = 58 | 80;
export type QrMode = 'native' | 'raster';

/**
 * The terminal's settings as the screens see them (`getSettings`). The tokens are write-only:
 * no API ever returns them, only whether each is set.
 */
export interface Settings {
  relay_url: string;
  /** Whether the terminal token is stored (its value never leaves the terminal services). */
  terminal_token_set: boolean;
  /** Whether the optional manager token (unlocks the manager screen on a cashier terminal) is stored. */
  manager_token_set: boolean;
  /** `tcp://host:9100` or `preview` (render on screen only). */
  printer: string;
  paper_width: PaperWidth;
  language: Language;
  /** Native `GS ( k` QR, or a raster image for printers without it. */
  qr_mode: QrMode;
  /** Minutes after which an unpaid order is "stale" on the manager screen. */
  stale_minutes: number;
  /** Printed at the top of every slip and receipt, shown on the customer display ("" = none). */
  store_name: string;
  /** Printed under the store name on every slip and receipt ("" = none). */
  store_address: string;
  /** The store's logo on the idle customer display: a `data:image/(png|jpeg|gif|webp|svg+xml);base64,…` URL of at most 64 KB, or "". */
  store_logo: string;
  /** The cashier's name printed on paid receipts ("" = none). */
  cashier_name: string;
  /** Sales above this many fen ask the cashier to confirm before the QR is created (default 500000 = ¥5,000). */
  confirm_above_fen: number;
  /** Customer display (Electron): `auto` = on a second screen when there is one, `window` = always a window, `off`. */
  customer_display: CustomerDisplayMode;
}

export type CustomerDisplayMode = 'auto' | 'window' | 'off';

/** Names of the write-only settings. */
export type TokenSetting = 'terminal_token' | 'manager_token';

/**
 * What `saveSettings` takes. Every field is optional: an absent field keeps its stored value.
 * Tokens: absent (or `undefined`) = keep, a non-empty string = replace, `null` or `""` = clear.
 * `terminal_token_set`/`manager_token_set` may be sent back as received; they are ignored.
 */
export interface SettingsUpdate {
  relay_url?: string;
  terminal_token?: string | null;
  manager_token?: string | null;
  terminal_token_set?: boolean;
  manager_token_set?: boolean;
  printer?: string;
  paper_width?: PaperWidth;
  language?: Language;
  qr_mode?: QrMode;
  stale_minutes?: number;
  store_name?: string;
  store_address?: string;
  store_logo?: string;
  cashier_name?: string;
  confirm_above_fen?: number;
  customer_display?: CustomerDisplayMode;
}

/** A message per field at fault (keys of SettingsUpdate, tokens included). */
export type SettingsErrors = Partial<Record<Exclude<keyof SettingsUpdate, 'terminal_token_set' | 'manager_token_set'>, string>>;

export type SaveSettingsResult = { ok: true; settings: Settings } | { ok: false; errors: SettingsErrors };

export type Role = 'cashier' | 'manager';

export interface SessionInfo {
  terminal: string | null;
  role: Role | null;
  /** Whether the manager screen is available: manager terminal, valid manager token, or a live PIN unlock. */
  manager: boolean;
  /** Until when a manager-PIN unlock of this cashier terminal lasts (ISO), or null when there is none. */
  manager_until?: string | null;
  relay_url: string;
  /** The sandbox's phone page when running on the embedded default, else null. */
  sandbox_url: string | null;
  /** How this shell runs: 'electron' or 'web'. */
  shell: 'electron' | 'web';
  connection: ConnectionState;
}

export type ConnectionState = 'connecting' | 'online' | 'offline' | 'unauthorized' | 'unconfigured';

export interface OrderQuery {
  state?: OrderState;
  /** Orders of this terminal only. */
  terminal?: string;
  older_than_minutes?: number;
  /** order number, or part of it */
  q?: string;
  /** Beijing day yyyy-MM-dd of creation */
  date?: string;
  limit?: number;
}

/**
 * `shift`: a shift report (its job's `combine_out_trade_no` is `shift-<id>`); `refund`: a refund
 * slip (退款凭证) of one refund of the order (`out_refund_no` on the job).
 */
export type PrintKind = 'slip' | 'receipt' | 'shift' | 'refund';

export type PrintJobState = 'queued' | 'printing' | 'done' | 'failed';
export type PrinterFailure = 'offline' | 'timeout' | 'refused' | 'error';

export interface PrintJob {
  id: string;
  kind: PrintKind;
  combine_out_trade_no: string;
  /** Kind `refund`: the refund printed. */
  out_refund_no?: string;
  reprint: boolean;
  state: PrintJobState;
  attempts: number;
  failure: PrinterFailure | null;
  message: string | null;
  created_at: string;
  /**
   * When the queue tries again by itself (ISO time), or absent/null when it will not: after a
   * failure where the paper may have come out (no answer, printer offline, connection reset) only
   * the cashier retries (`retryPrint`), and that paper is marked REPRINT.
   */
  retry_at?: string | null;
  /** Preview printer: the receipt as lines of text and a QR payload, for on-screen rendering. */
  preview?: ReceiptPreview;
}

export interface ReceiptPreview {
  lines: string[];
  qr: string | null;
  width: PaperWidth;
}

export interface DailyTakings {
  date: string;
  /** `count`: paid sales containing this merchant. */
  merchants: { mchid: string; name: string; amount: number; count: number }[];
  /** The day's paid sales, each counted once however many merchants it has. */
  count?: number;
  /** Net of the day's successful refunds. */
  amount?: number;
  /** Paid before refunds, and the day's successful refunds (fen, count). */
  gross_amount?: number;
  refund_amount?: number;
  refund_count?: number;
}

/** Result of `testPrint()`: the printer the page went to and how it went. */
export interface TestPrintResult {
  printer: string;
  ok: boolean;
  failure: PrinterFailure | null;
  message: string | null;
  /** Preview printer: the page as text lines (nothing is sent anywhere). */
  preview?: ReceiptPreview;
}

/**
 * `printerStatus()`: asked with DLE EOT (real-time status) over the printer's TCP port.
 * `online` ready; `offline` answered with the offline bit (cover open, error); `paper-out` the
 * paper sensor reports the roll end; `timeout` connected but no answer; `unreachable` refused or
 * no route; `preview` no printer configured.
 */
export type PrinterState = 'online' | 'offline' | 'paper-out' | 'timeout' | 'unreachable' | 'preview';

export interface PrinterStatus {
  printer: string;
  state: PrinterState;
  /** The status bytes answered (DLE EOT 1, then 4 when asked), for the technician. */
  raw: number[];
  message: string | null;
  checked_at: string;
}

/**
 * What the customer display shows: nothing else ever reaches it (no tokens, settings, order
 * lists, merchants' ids or other orders). Follows the order the cashier presents (`presentOrder`).
 */
export type CustomerPhase = 'idle' | 'waiting' | 'paid' | 'failed';

export interface CustomerView {
  phase: CustomerPhase;
  store_name: string;
  /** data: URL or "" */
  store_logo: string;
  language: Language;
  /** Total in fen (waiting, paid, failed). */
  amount?: number;
  /** The QR payload (waiting only). */
  code_url?: string;
  /** ISO time the QR stops working (waiting only). */
  expires_at?: string;
  /** Why the sale ended without payment (failed only): closed, failed at WeChat Pay, or the QR expired. */
  reason?: 'closed' | 'failed' | 'expired';
}

/** Electron IPC of the customer display: its own preload and channels, nothing of the cashier's API. */
export const CUSTOMER_VIEW_CHANNEL = 'customer:view';
export const CUSTOMER_EVENT_CHANNEL = 'customer:event';

/** What the customer display's preload exposes on `window.posCustomer` (not `customer`: an element id would shadow it). */
export interface CustomerPreloadApi {
  current(): Promise<CustomerView>;
  onView(listener: (view: CustomerView) => void): () => void;
}

/** Events pushed to the renderer. */
export type TerminalEvent =
  | RelayEvent
  | { type: 'connection'; state: ConnectionState }
  | { type: 'print.job'; job: PrintJob };

/** Every method rejects with a TerminalError-shaped object: `{code, message, field?, retry_after_seconds?}`. */
export interface TerminalApi {
  session(): Promise<SessionInfo>;
  /** Settings without the tokens' values (see Settings). */
  getSettings(): Promise<Settings>;
  /** Partial update (see SettingsUpdate); answers the settings as getSettings would. */
  saveSettings(update: SettingsUpdate): Promise<SaveSettingsResult>;
  listMerchants(): Promise<SubMerchantInfo[]>;
  /** `idempotency_key` is generated by the renderer once per 收款 press. */
  createOrder(req: CreateOrderRequest, idempotencyKey: string): Promise<Order>;
  getOrder(combineOutTradeNo: string, sync?: boolean): Promise<Order>;
  listOrders(query: OrderQuery): Promise<Order[]>;
  /** Orders not final, of this terminal, e.g. after a restart. */
  openOrders(): Promise<Order[]>;
  closeOrder(combineOutTradeNo: string): Promise<Order>;
  /**
   * Refunds part or all of one sub-order (manager, or a cashier unlocked with the manager PIN).
   * `idempotency_key` is generated by the screen once per confirmed refund, so a retry after a
   * lost answer is the same refund. Refusals: REFUND_EXCEEDS_PAID, ORDER_NOT_PAID, REFUND_TOO_SOON,
   * MERCHANT_KEYS_MISSING, WECHATPAY_BUSY (see the relay's README).
   */
  refundOrder(combineOutTradeNo: string, req: CreateRefundRequest, idempotencyKey: string): Promise<Refund>;
  /** Prints the refund slip (退款凭证) of one refund of the order. */
  printRefund(combineOutTradeNo: string, outRefundNo: string, reprint?: boolean): Promise<PrintJob>;
  reconcileBills(billDate: string): Promise<ReconciliationReport>;
  listAlerts(): Promise<Alert[]>;
  takings(date: string): Promise<DailyTakings>;
  print(kind: PrintKind, combineOutTradeNo: string, reprint?: boolean): Promise<PrintJob>;
  printJobs(): Promise<PrintJob[]>;
  retryPrint(jobId: string): Promise<PrintJob>;
  /** URL of the sandbox phone page for "simulate the customer's scan" (embedded default only). */
  customerPhoneUrl(): Promise<string | null>;
  /** The order shown to the customer display (the one on the cashier's screen), or null for idle. */
  presentOrder(combineOutTradeNo: string | null): Promise<CustomerView>;
  /** Prints a short test page (store, printer address, paper width, sample QR, date). Never rejects for a printer problem. */
  testPrint(): Promise<TestPrintResult>;
  /** Asks the printer its real-time status (DLE EOT). */
  printerStatus(): Promise<PrinterStatus>;
  /** Everything that happened to an order (relay `GET /v1/orders/{no}/timeline`). */
  orderTimeline(combineOutTradeNo: string): Promise<OrderTimeline>;
  /** This terminal's open shift, or null. */
  currentShift(): Promise<Shift | null>;
  /** Opens a shift on this terminal (cashier's name optional, ≤ 20 characters). */
  openShift(cashier?: string): Promise<Shift>;
  /** Closes this terminal's open shift; the report is printed (job in `job`, null when printing could not start). */
  closeShift(): Promise<{ report: ShiftReport; job: PrintJob | null }>;
  /** A shift's report (stored at close; live while open). */
  shiftReport(shiftId: number): Promise<ShiftReport>;
  /** Prints a shift's report again (marked REPRINT). */
  printShiftReport(shiftId: number): Promise<PrintJob>;
  /** The manager's day-end report (Beijing day). */
  dayEnd(date: string): Promise<DayEndReport>;
  /** A report as CSV made by the relay (UTF-8, starts with U+FEFF so Excel reads Chinese), for the screen to save. */
  exportCsv(what: CsvExport): Promise<{ filename: string; content: string }>;
  /** Whether the manager PIN is set (manager only). */
  managerPinStatus(): Promise<ManagerPinStatus>;
  /** Sets or replaces the manager PIN, 4–8 digits (a manager terminal or manager token only). */
  setManagerPin(pin: string): Promise<ManagerPinStatus>;
  /** Unlocks the manager screen on this cashier terminal for a few minutes; the elevation stays in the terminal services. */
  unlockManager(pin: string): Promise<{ expires_at: string }>;
  /** Ends a PIN unlock at once. */
  lockManager(): Promise<void>;
}

export type CsvExport = { kind: 'shift'; id: number } | { kind: 'day-end'; date: string };

export type TerminalMethod = keyof TerminalApi;

export const TERMINAL_METHODS: readonly TerminalMethod[] = [
  'session', 'getSettings', 'saveSettings', 'listMerchants', 'createOrder', 'getOrder', 'listOrders', 'openOrders',
  'closeOrder', 'refundOrder', 'printRefund', 'reconcileBills', 'listAlerts', 'takings', 'print', 'printJobs', 'retryPrint', 'customerPhoneUrl',
  'presentOrder', 'testPrint', 'printerStatus', 'orderTimeline', 'currentShift', 'openShift', 'closeShift', 'shiftReport',
  'printShiftReport', 'dayEnd', 'exportCsv', 'managerPinStatus', 'setManagerPin', 'unlockManager', 'lockManager',
];

/** IPC channel of each method (`pos:<method>`), and the one event channel. */
export const ipcChannel = (m: TerminalMethod): string => `pos:${m}`;
export const EVENT_CHANNEL = 'pos:event';

/** Wire envelope for both IPC and HTTP: errors travel as data, not as thrown objects. */
export type ApiResult<T> = { ok: true; value: T } | { ok: false; error: ErrorBody };

/** What the preload exposes on `window.pos`. */
export interface PreloadApi extends TerminalApi {
  onEvent(listener: (event: TerminalEvent) => void): () => void;
}
