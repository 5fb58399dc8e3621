/**
 * Terminal services: the TerminalApi over the relay, the print queue and the settings, plus the
 * event stream the UI listens to. Plain Node: Electron's main process and the web host both wrap it.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Alert, CreateOrderRequest, CreateRefundRequest, Order, ReconciliationReport, Refund, RelayEvent, SubMerchantInfo } from '../contracts/relay-api';
import { FINAL_STATES } from '../contracts/relay-api';
import type {
  ConnectionState, CsvExport, CustomerView, DailyTakings, OrderQuery, PrinterStatus, PrintJob, PrintKind, Role, SaveSettingsResult, SessionInfo, Settings,
  SettingsUpdate, TerminalApi, TerminalEvent, TestPrintResult,
} from '../contracts/terminal-api';
import type { DayEndReport, ManagerPinStatus, OrderTimeline, Shift, ShiftReport } from '../contracts/counter-api';
import { CustomerFeed } from './customer-feed';
import { TerminalError } from './errors';
import { renderEscPos } from './printing/escpos';
import { renderPreview } from './printing/preview';
import { PrintQueue } from './printing/queue';
import { buildTestPage } from './printing/test-page';
import { classifyPrinterError, queryPrinterStatus, sendToPrinter, type SendOptions } from './printing/transport';
import { RelayClient, type RelayEvents } from './relay-client';
import { publicSettings, SettingsStore, type StoredSettings } from './settings';

export interface TerminalServicesOptions {
  /** Settings file; defaults to `<userDataDir>/settings.json`. */
  settingsPath?: string;
  /** Folder for settings and the print queue. */
  userDataDir?: string;
  /** Values forced over the stored settings at start (embedded default: relay URL and tokens). */
  settingsOverrides?: Partial<StoredSettings>;
  /** Sandbox base URL on the embedded default (its phone page is `/sandbox`). */
  sandboxUrl?: string | null;
  shell?: 'electron' | 'web';
  /** Printer transport override and timings (tests). */
  printSend?: (uri: string, bytes: Buffer, opts: SendOptions) => Promise<void>;
  printTimeoutMs?: number;
  printRetryBaseMs?: number;
  printWaitForAck?: boolean;
  heartbeatTimeoutMs?: number;
  /** How long the customer display shows "paid"/"failed" before idle (default 6 s). */
  customerThanksMs?: number;
}

export interface TerminalServices extends TerminalApi {
  onEvent(listener: (e: TerminalEvent) => void): () => void;
  readonly connection: ConnectionState;
  /** The customer display's current view, and its changes (nothing else reaches that display). */
  customerView(): CustomerView;
  onCustomerView(listener: (v: CustomerView) => void): () => void;
  close(): Promise<void>;
}

/** Background work nobody awaits must not end in an unhandled rejection: say what failed. */
function bug(what: string, err: unknown): void {
  console.error(`[terminal] printing ${what} failed: ${(err as Error)?.stack ?? String(err)}`);
}

export async function startTerminalServices(opts: TerminalServicesOptions): Promise<TerminalServices> {
  const svc = new Services(opts);
  svc.connect();
  return svc;
}

class Services implements TerminalServices {
  private readonly store: SettingsStore;
  private readonly queue: PrintQueue;
  private readonly bus = new EventEmitter<{ event: [TerminalEvent] }>();
  private relay!: RelayClient;
  private events: RelayEvents | null = null;
  private me: { terminal: string; role: Role } | null = null;
  private managerOk: boolean | null = null;
  private merchantNames: Record<string, string> = {};
  private readonly orders = new Map<string, Order>();
  private readonly receiptPending = new Set<string>();
  private readonly feed: CustomerFeed;
  /** A manager-PIN unlock of this cashier terminal: held here only, never handed to a screen. */
  private elevation: { value: string; expiresMs: number } | null = null;
  /** Print jobs already reported to the relay's order timeline. */
  private readonly reported = new Set<string>();
  connection: ConnectionState = 'connecting';

  constructor(private readonly opts: TerminalServicesOptions) {
    const dir = opts.userDataDir;
    const settingsPath = opts.settingsPath ?? (dir ? join(dir, 'settings.json') : undefined);
    if (!settingsPath) throw new TerminalError('BAD_CONFIG', 'startTerminalServices needs settingsPath or userDataDir');
    const dataDir = dir ?? join(settingsPath, '..');
    this.store = new SettingsStore(settingsPath, opts.settingsOverrides);
    if (opts.settingsOverrides && Object.keys(opts.settingsOverrides).length) this.store.save(this.store.get());
    this.queue = new PrintQueue({
      path: join(dataDir, 'print-jobs.json'),
      settings: () => this.store.get(),
      send: opts.printSend,
      timeoutMs: opts.printTimeoutMs,
      retryBaseMs: opts.printRetryBaseMs,
      waitForAck: opts.printWaitForAck,
      // A slip's QR is only worth paper while the order waits for payment.
      wanted: (job) => this.slipStillWanted(job),
    });
    this.feed = new CustomerFeed({ settings: () => this.store.get(), thanksMs: opts.customerThanksMs });
    this.queue.on('job', (job) => {
      this.emit({ type: 'print.job', job });
      this.reportPrinted(job);
    });
  }

  /**
   * Whether an automatic retry of a job should still print. A slip's QR is only worth paper while
   * its order waits for payment and has not expired. After a restart the order is not in the cache
   * yet: the relay is asked; when it cannot answer, the slip is not printed by itself (the cashier
   * can print it again; an unwanted QR for a paid order is worse than a missing one).
   */
  private async slipStillWanted(job: PrintJob): Promise<boolean> {
    if (job.kind !== 'slip') return true;
    let o: Order;
    try {
      o = await this.knownOrder(job.combine_out_trade_no);
    } catch {
      return false;
    }
    return !FINAL_STATES.includes(o.state) && !(Date.parse(o.expires_at) <= Date.now());
  }

  /** The order from the cache (kept current by pushed events), else from the relay (then cached). */
  private async knownOrder(no: string): Promise<Order> {
    const cached = this.orders.get(no);
    if (cached) return cached;
    const o = await this.relay.getOrder(no);
    this.track(o);
    return o;
  }

  /** A slip or receipt that came out goes into the order's timeline at the relay (best effort). */
  private reportPrinted(job: PrintJob): void {
    if (job.state !== 'done' || job.kind === 'shift' || job.kind === 'refund' || this.reported.has(job.id)) return;
    this.reported.add(job.id);
    if (this.reported.size > 5000) this.reported.delete(this.reported.values().next().value!);
    this.relay.orderEvent(job.combine_out_trade_no, { type: 'printed', kind: job.kind, reprint: job.reprint })
      .catch(() => undefined); // the timeline then lacks this line; the paper is what matters
  }

  private liveElevation(): string | null {
    if (this.elevation && this.elevation.expiresMs > Date.now()) return this.elevation.value;
    this.elevation = null;
    return null;
  }

  customerView(): CustomerView {
    return this.feed.view();
  }

  onCustomerView(listener: (v: CustomerView) => void): () => void {
    return this.feed.onView(listener);
  }

  private emit(e: TerminalEvent): void {
    this.bus.emit('event', e);
  }

  onEvent(listener: (e: TerminalEvent) => void): () => void {
    this.bus.on('event', listener);
    return () => this.bus.off('event', listener);
  }

  /** (Re)builds the relay client and event stream from the current settings. */
  connect(): void {
    const s = this.store.get();
    this.events?.close();
    this.me = null;
    this.managerOk = null;
    this.elevation = null;
    this.relay = new RelayClient({
      baseUrl: s.relay_url, token: s.terminal_token, managerToken: s.manager_token || undefined, elevation: () => this.liveElevation(),
    });
    this.events = this.relay.events({ heartbeatTimeoutMs: this.opts.heartbeatTimeoutMs });
    this.events.on('state', (st) => {
      this.connection = st;
      this.emit({ type: 'connection', state: st });
    });
    this.events.on('event', (e) => this.onRelayEvent(e));
    this.events.start();
    this.connection = this.events.state;
  }

  private onRelayEvent(e: RelayEvent): void {
    if (e.type === 'snapshot') for (const o of e.orders) this.track(o);
    if (e.type === 'order.updated') this.track(e.order);
    this.emit(e);
  }

  /** Keeps the latest version of an order and prints the paid receipt once for our own orders. */
  private track(o: Order): void {
    const prev = this.orders.get(o.combine_out_trade_no);
    if (prev && prev.version !== undefined && o.version !== undefined && o.version < prev.version) return;
    this.orders.set(o.combine_out_trade_no, o);
    this.feed.update(o);
    if (this.orders.size > 2000) this.orders.delete(this.orders.keys().next().value!);
    this.maybePrintReceipt(o);
  }

  private maybePrintReceipt(o: Order): void {
    const no = o.combine_out_trade_no;
    if (o.state !== 'SUCCESS' || this.receiptPending.has(no)) return;
    // "Created by this terminal": this terminal printed its slip. A receipt job already present
    // (also from before a restart) means it was printed or is being retried: never twice.
    if (!this.queue.find(no, 'slip') || this.queue.find(no, 'receipt')) return;
    this.receiptPending.add(no);
    this.queue.enqueue('receipt', o, this.merchantNames, false)
      .catch((err: unknown) => bug('the paid receipt', err))
      .finally(() => this.receiptPending.delete(no));
  }

  private async ensureMe(): Promise<{ terminal: string; role: Role }> {
    if (!this.me) this.me = await this.relay.me();
    return this.me;
  }

  private async ensureMerchantNames(): Promise<void> {
    if (Object.keys(this.merchantNames).length) return;
    await this.listMerchants().catch(() => undefined);
  }

  // ---- TerminalApi ----

  async session(): Promise<SessionInfo> {
    const s = this.store.get();
    let terminal: string | null = null;
    let role: Role | null = null;
    if (s.relay_url && s.terminal_token) {
      try {
        ({ terminal, role } = await this.ensureMe());
      } catch (err) {
        if ((err as TerminalError).status === 401) this.connection = 'unauthorized';
      }
    }
    let manager = role === 'manager';
    if (!manager && s.manager_token && s.relay_url) {
      if (this.managerOk === null) {
        try {
          this.managerOk = (await this.relay.managerMe()).role === 'manager';
        } catch (err) {
          if ((err as TerminalError).status === 401 || (err as TerminalError).status === 403) this.managerOk = false;
        }
      }
      manager = !!this.managerOk;
    }
    const elevated = !manager && this.liveElevation() !== null;
    return {
      terminal, role, manager: manager || elevated, manager_until: elevated ? new Date(this.elevation!.expiresMs).toISOString() : null, relay_url: s.relay_url,
      sandbox_url: this.opts.sandboxUrl ? `${this.opts.sandboxUrl.replace(/\/+$/, '')}/sandbox` : null,
      shell: this.opts.shell ?? 'web',
      connection: s.relay_url && s.terminal_token ? this.connection : 'unconfigured',
    };
  }

  async getSettings(): Promise<Settings> {
    return publicSettings(this.store.get());
  }

  async saveSettings(update: SettingsUpdate): Promise<SaveSettingsResult> {
    const before = this.store.get();
    const r = this.store.update(update);
    const after = this.store.get();
    if (r.ok && (before.relay_url !== after.relay_url || before.terminal_token !== after.terminal_token || before.manager_token !== after.manager_token)) {
      this.merchantNames = {};
      this.connect();
    }
    if (r.ok) this.feed.refresh();
    return r;
  }

  async listMerchants(): Promise<SubMerchantInfo[]> {
    const r = await this.relay.merchants();
    this.merchantNames = Object.fromEntries(r.sub_merchants.map((m) => [m.mchid, m.name]));
    return r.sub_merchants;
  }

  async createOrder(req: CreateOrderRequest, idempotencyKey: string): Promise<Order> {
    const order = await this.relay.createOrder(req, idempotencyKey);
    await this.ensureMerchantNames();
    this.track(order);
    // A retried press (same idempotency key) returns the same order: one slip only.
    if (order.code_url && !this.queue.find(order.combine_out_trade_no, 'slip')) {
      // The slip prints in the background: a slow printer must not hold up the QR on screen.
      this.queue.enqueue('slip', order, this.merchantNames, false)
        .then(() => this.maybePrintReceipt(this.orders.get(order.combine_out_trade_no) ?? order))
        .catch((err: unknown) => bug('the order slip', err));
    }
    return order;
  }

  async getOrder(no: string, sync = false): Promise<Order> {
    const o = await this.relay.getOrder(no, sync);
    this.track(o);
    return o;
  }

  async listOrders(query: OrderQuery = {}): Promise<Order[]> {
    return this.relay.listOrders(query);
  }

  async openOrders(): Promise<Order[]> {
    const me = await this.ensureMe();
    const orders = await this.relay.listOrders({ open: true, terminal: me.terminal });
    // Defensive: the relay filters already, but a non-final order of another terminal must not show.
    return orders.filter((o) => o.terminal === me.terminal && !FINAL_STATES.includes(o.state));
  }

  /** A refund of one sub-order, as the manager (token or PIN elevation); the pushed order.updated follows it. */
  async refundOrder(no: string, req: CreateRefundRequest, idempotencyKey: string): Promise<Refund> {
    return this.relay.refund(no, req, idempotencyKey);
  }

  /** The refund slip (退款凭证) of one refund, from the relay's current view of the order. */
  async printRefund(no: string, outRefundNo: string, reprint = false): Promise<PrintJob> {
    const order = await this.relay.getOrder(no);
    this.track(order);
    if (!order.refunds?.some((r) => r.out_refund_no === outRefundNo)) {
      throw new TerminalError('REFUND_NOT_FOUND', `order ${no} has no refund ${outRefundNo}`, { field: 'outRefundNo' });
    }
    await this.ensureMerchantNames();
    const again = reprint || !!this.queue.findRefund(outRefundNo);
    return this.queue.enqueue('refund', order, this.merchantNames, again, outRefundNo);
  }

  async closeOrder(no: string): Promise<Order> {
    const o = await this.relay.closeOrder(no);
    this.track(o);
    return o;
  }

  reconcileBills(billDate: string): Promise<ReconciliationReport> {
    return this.relay.reconcile(billDate);
  }

  async listAlerts(): Promise<Alert[]> {
    return (await this.relay.alerts()).alerts;
  }

  takings(date: string): Promise<DailyTakings> {
    return this.relay.takings(date);
  }

  async print(kind: PrintKind, no: string, reprint = false): Promise<PrintJob> {
    let order = this.orders.get(no);
    let fresh: Order | null = null;
    const original = this.queue.find(no, kind, false);
    // The cache follows pushed events: a receipt asked for an order not yet seen paid here (the
    // customer shows the payment before the notification arrives) asks the relay, which asks WeChat Pay.
    if (!order || (kind === 'receipt' && order.state !== 'SUCCESS')) {
      order = await this.relay.getOrder(no, kind === 'receipt');
      if (kind === 'receipt') fresh = order;
      else this.track(order);
    }
    if (kind === 'receipt' && order.state !== 'SUCCESS') throw new TerminalError('ORDER_NOT_PAID', `order ${no} is ${order.state}: no paid receipt to print`, { field: 'kind' });
    if (kind === 'slip' && !order.code_url) throw new TerminalError('NO_CODE_URL', `order ${no} has no QR code to print`, { field: 'kind' });
    await this.ensureMerchantNames();
    // The relay's answer also pushed the change: the automatic paid receipt started meanwhile is the
    // paper asked for (retry resolves after its attempt, like a new job); another on top would be a second one.
    const auto = this.queue.find(no, kind, false);
    if (auto && auto !== original) return this.queue.retry(auto.id);
    // A second original would be indistinguishable from the first: once printed, it is a reprint.
    const again = reprint || !!auto;
    const job = this.queue.enqueue(kind, order, this.merchantNames, again);
    // Tracked only once this job exists, so the automatic paid receipt does not print a second one.
    if (fresh) this.track(fresh);
    return job;
  }

  async printJobs(): Promise<PrintJob[]> {
    return this.queue.list();
  }

  retryPrint(jobId: string): Promise<PrintJob> {
    return this.queue.retry(jobId);
  }

  async customerPhoneUrl(): Promise<string | null> {
    return this.opts.sandboxUrl ? `${this.opts.sandboxUrl.replace(/\/+$/, '')}/sandbox` : null;
  }

  async presentOrder(no: string | null): Promise<CustomerView> {
    if (no === null) {
      this.feed.present(null);
      return this.feed.view();
    }
    this.feed.present(await this.knownOrder(no));
    return this.feed.view();
  }

  async testPrint(): Promise<TestPrintResult> {
    const s = this.store.get();
    const doc = buildTestPage({
      printer: s.printer, width: s.paper_width, qrMode: s.qr_mode, language: s.language,
      storeName: s.store_name, storeAddress: s.store_address, now: new Date(),
    });
    if (s.printer === 'preview') return { printer: s.printer, ok: true, failure: null, message: null, preview: renderPreview(doc) };
    const waitForAck = this.opts.printWaitForAck ?? true;
    try {
      // Straight to the printer, not through the queue: a test page is never retried or reprinted.
      await (this.opts.printSend ?? sendToPrinter)(s.printer, renderEscPos(doc, { qrMode: s.qr_mode, statusRequest: waitForAck }), {
        timeoutMs: this.opts.printTimeoutMs ?? 5_000, waitForAck,
      });
      return { printer: s.printer, ok: true, failure: null, message: null };
    } catch (err) {
      const e = classifyPrinterError(err, s.printer.replace(/^tcp:\/\//, ''));
      return { printer: s.printer, ok: false, failure: e.failure, message: e.message };
    }
  }

  async printerStatus(): Promise<PrinterStatus> {
    const s = this.store.get();
    const checked_at = new Date().toISOString();
    if (s.printer === 'preview') return { printer: s.printer, state: 'preview', raw: [], message: null, checked_at };
    const a = await queryPrinterStatus(s.printer, Math.min(this.opts.printTimeoutMs ?? 3_000, 3_000));
    return { printer: s.printer, state: a.state, raw: a.raw, message: a.message, checked_at };
  }

  orderTimeline(no: string): Promise<OrderTimeline> {
    return this.relay.orderTimeline(no);
  }

  currentShift(): Promise<Shift | null> {
    return this.relay.currentShift();
  }

  openShift(cashier?: string): Promise<Shift> {
    return this.relay.openShift((cashier ?? this.store.get().cashier_name ?? '').trim());
  }

  async closeShift(): Promise<{ report: ShiftReport; job: PrintJob | null }> {
    const shift = await this.relay.currentShift();
    if (!shift) throw new TerminalError('NO_OPEN_SHIFT', 'no shift is open on this terminal');
    const report = await this.relay.closeShift(shift.id);
    // The report is closed at the relay whatever happens to the paper: a printing problem shows on the job.
    const job = await this.queue.enqueueShift(report, false).catch((err: unknown) => {
      bug('the shift report', err);
      return null;
    });
    return { report, job };
  }

  shiftReport(id: number): Promise<ShiftReport> {
    return this.relay.shiftReport(id);
  }

  async printShiftReport(id: number): Promise<PrintJob> {
    const report = await this.relay.shiftReport(id);
    // Printed before (closing prints it): this paper is a reprint.
    return this.queue.enqueueShift(report, true);
  }

  dayEnd(date: string): Promise<DayEndReport> {
    return this.relay.dayEnd(date);
  }

  async exportCsv(what: CsvExport): Promise<{ filename: string; content: string }> {
    if (what.kind === 'shift') return { filename: `shift-${what.id}.csv`, content: await this.relay.csv(`/v1/shifts/${what.id}/report?format=csv`) };
    return { filename: `day-end-${what.date}.csv`, content: await this.relay.csv(`/v1/reports/day-end?date=${encodeURIComponent(what.date)}&format=csv`) };
  }

  managerPinStatus(): Promise<ManagerPinStatus> {
    return this.relay.pinStatus();
  }

  setManagerPin(pin: string): Promise<ManagerPinStatus> {
    return this.relay.setPin(pin);
  }

  async unlockManager(pin: string): Promise<{ expires_at: string }> {
    const e = await this.relay.unlock(pin);
    this.elevation = { value: e.elevation, expiresMs: Date.parse(e.expires_at) };
    // Only the end time reaches the screen; the elevation itself stays here.
    return { expires_at: e.expires_at };
  }

  async lockManager(): Promise<void> {
    const e = this.elevation;
    this.elevation = null;
    if (e) await this.relay.lock(e.value).catch(() => undefined); // it expires at the relay anyway
  }

  async close(): Promise<void> {
    this.feed.close();
    this.events?.close();
    this.events = null;
    await this.queue.close();
    this.bus.removeAllListeners();
  }
}
