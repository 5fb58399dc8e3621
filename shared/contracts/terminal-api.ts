/**
 * The typed terminal API: the only thing the renderer knows. Served two ways with the same
 * shapes: Electron IPC (preload exposes `window.pos`) and the loopback web host
 * (`POST /api/<method>` with `{"args": [...]}`, events over `GET /api/events` as
 * Server-Sent Events, every call carrying the web host's session cookie).
 * Pure types and constants: no Node, no Electron.
 */
import type {
  Alert, CreateOrderRequest, ErrorBody, Order, OrderState, ReconciliationReport, RelayEvent, SubMerchantInfo,
} from './relay-api';

// What the screens need of the relay's shapes, re-exported so the renderer imports this file only.
export type {
  Alert, BillMerchantTotals, BillMismatch, CatalogItem, CreateOrderRequest, CreateOrderSubOrder, ErrorBody, MismatchKind,
  Order, OrderCreation, OrderState, ReconciliationReport, RelayEvent, RelayEventType, SubMerchantInfo, SubOrder,
} from './relay-api';
export { FINAL_STATES, ORDER_STATES } from './relay-api';

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
}

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
}

/** A message per field at fault (keys of SettingsUpdate, tokens included). */
export type SettingsErrors = Partial<Record<Exclude<keyof SettingsUpdate, 'terminal_token_set' | 'manager_token_set'>, string>>;

export type SaveSettingsResult = { ok: true; settings: Settings } | { ok: false; errors: SettingsErrors };

export type Role = 'cashier' | 'manager';

export interface SessionInfo {
  terminal: string | null;
  role: Role | null;
  /** Whether the manager token is set and valid (manager screen available). */
  manager: boolean;
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
  older_than_minutes?: number;
  /** order number, or part of it */
  q?: string;
  /** Beijing day yyyy-MM-dd of creation */
  date?: string;
  limit?: number;
}

export type PrintKind = 'slip' | 'receipt';

export type PrintJobState = 'queued' | 'printing' | 'done' | 'failed';
export type PrinterFailure = 'offline' | 'timeout' | 'refused' | 'error';

export interface PrintJob {
  id: string;
  kind: PrintKind;
  combine_out_trade_no: string;
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
  merchants: { mchid: string; name: string; amount: number; count: number }[];
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
  reconcileBills(billDate: string): Promise<ReconciliationReport>;
  listAlerts(): Promise<Alert[]>;
  takings(date: string): Promise<DailyTakings>;
  print(kind: PrintKind, combineOutTradeNo: string, reprint?: boolean): Promise<PrintJob>;
  printJobs(): Promise<PrintJob[]>;
  retryPrint(jobId: string): Promise<PrintJob>;
  /** URL of the sandbox phone page for "simulate the customer's scan" (embedded default only). */
  customerPhoneUrl(): Promise<string | null>;
}

export type TerminalMethod = keyof TerminalApi;

export const TERMINAL_METHODS: readonly TerminalMethod[] = [
  'session', 'getSettings', 'saveSettings', 'listMerchants', 'createOrder', 'getOrder', 'listOrders', 'openOrders',
  'closeOrder', 'reconcileBills', 'listAlerts', 'takings', 'print', 'printJobs', 'retryPrint', 'customerPhoneUrl',
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
