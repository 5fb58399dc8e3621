/**
 * Input validation of every terminal API method, shared by the Electron IPC handlers and the web
 * host: whatever the renderer sends is checked here before it reaches the services.
 */
import { z } from 'zod';
import { MAX_EXPIRE_MINUTES, MAX_SUB_ORDERS, ORDER_STATES } from '../contracts/relay-api';
import { TERMINAL_METHODS, type ApiResult, type TerminalApi, type TerminalMethod } from '../contracts/terminal-api';
import { TerminalError, toErrorBody } from './errors';

const orderNo = z.string().regex(/^[0-9A-Za-z_-]{1,64}$/, 'order number must be 1-64 of [0-9A-Za-z_-]');
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'date must be yyyy-MM-dd');
const shiftId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const pin = z.string().regex(/^\d{4,8}$/, 'PIN must be 4 to 8 digits');

// Shape only: the limits of each field (bytes of a description, the per-sub-order cap, which
// characters may be printed) are the relay's one rule, answered as a 400 naming the field.
const createOrderRequest = z.object({
  sub_orders: z.array(z.object({
    mchid: z.string().regex(/^\d{1,32}$/, 'mchid must be digits'),
    description: z.string().min(1, 'description is required'),
    amount: z.number().int('amount must be integer fen').positive('amount must be positive').max(Number.MAX_SAFE_INTEGER),
    attach: z.string().optional(),
    // One sub-order: a single-merchant sale (basic Native); 2–10: a combined sale (contract §2).
  }).strict()).min(1, 'a sale needs at least one sub-order').max(MAX_SUB_ORDERS, `one sale pays at most ${MAX_SUB_ORDERS} merchants: split the sale`),
  description: z.string().optional(),
  expire_minutes: z.number().int().min(1).max(MAX_EXPIRE_MINUTES).optional(),
}).strict();

const orderQuery = z.object({
  state: z.enum(ORDER_STATES as [string, ...string[]]).optional(),
  older_than_minutes: z.number().int().min(0).max(100_000).optional(),
  q: z.string().max(64).optional(),
  terminal: z.string().max(64).optional(),
  date: day.optional(),
  limit: z.number().int().min(1).max(1000).optional(),
}).strict();

/** [parameter schemas, number of required parameters] per method. */
const PARAMS: Record<TerminalMethod, [z.ZodType[], number]> = {
  session: [[], 0],
  getSettings: [[], 0],
  saveSettings: [[z.record(z.string(), z.unknown())], 1],
  listMerchants: [[], 0],
  createOrder: [[createOrderRequest, z.string().regex(/^[\x21-\x7e]{8,128}$/, 'idempotency key must be 8-128 printable characters')], 2],
  getOrder: [[orderNo, z.boolean()], 1],
  listOrders: [[orderQuery], 0],
  openOrders: [[], 0],
  closeOrder: [[orderNo], 1],
  refundOrder: [[orderNo, z.object({
    out_trade_no: orderNo,
    amount: z.number().int('amount must be integer fen').positive('amount must be positive').max(100_000_000_00),
    reason: z.string().max(80, 'reason: at most 80 characters').optional(),
  }).strict(), z.string().regex(/^[\x21-\x7e]{8,128}$/, 'idempotency key must be 8-128 printable characters')], 3],
  printRefund: [[orderNo, z.string().regex(/^[0-9A-Za-z_\-|*@]{1,64}$/, 'refund number must be 1-64 of [0-9A-Za-z_-|*@]'), z.boolean()], 2],
  reconcileBills: [[day], 1],
  listAlerts: [[], 0],
  takings: [[day], 1],
  print: [[z.enum(['slip', 'receipt']), orderNo, z.boolean()], 2],
  printJobs: [[], 0],
  retryPrint: [[z.string().min(1).max(64)], 1],
  customerPhoneUrl: [[], 0],
  presentOrder: [[orderNo.nullable()], 1],
  testPrint: [[], 0],
  printerStatus: [[], 0],
  orderTimeline: [[orderNo], 1],
  currentShift: [[], 0],
  openShift: [[z.string().max(20, 'cashier: at most 20 characters')], 0],
  closeShift: [[], 0],
  shiftReport: [[shiftId], 1],
  printShiftReport: [[shiftId], 1],
  dayEnd: [[day], 1],
  exportCsv: [[z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('shift'), id: shiftId }).strict(),
    z.object({ kind: z.literal('day-end'), date: day }).strict(),
  ])], 1],
  managerPinStatus: [[], 0],
  setManagerPin: [[pin], 1],
  unlockManager: [[pin], 1],
  lockManager: [[], 0],
};

export function isTerminalMethod(m: unknown): m is TerminalMethod {
  return typeof m === 'string' && (TERMINAL_METHODS as readonly string[]).includes(m);
}

/** Checks the arguments of `method`; throws TerminalError BAD_INPUT naming the argument at fault. */
export function validateArgs(method: TerminalMethod, args: unknown): unknown[] {
  if (!Array.isArray(args)) throw new TerminalError('BAD_INPUT', `${method}: args must be an array`, { field: 'args' });
  const [schemas, required] = PARAMS[method];
  // Trailing undefined (optional arguments not given) is the same as absent.
  const list = [...args];
  while (list.length > required && list[list.length - 1] === undefined) list.pop();
  if (list.length < required || list.length > schemas.length) {
    throw new TerminalError('BAD_INPUT', `${method} takes ${required === schemas.length ? required : `${required}-${schemas.length}`} argument(s), got ${args.length}`, { field: 'args' });
  }
  return list.map((a, i) => {
    const r = schemas[i]!.safeParse(a);
    if (r.success) return r.data;
    const issue = r.error.issues[0]!;
    const path = issue.path.length ? issue.path.join('.') : `args[${i}]`;
    throw new TerminalError('BAD_INPUT', `${method}: ${path}: ${issue.message}`, { field: path });
  });
}

/** Validates, calls, and wraps the outcome as an ApiResult (errors travel as data). */
export async function dispatch(api: TerminalApi, method: unknown, args: unknown): Promise<ApiResult<unknown>> {
  try {
    if (!isTerminalMethod(method)) throw new TerminalError('UNKNOWN_METHOD', `unknown method ${String(method).slice(0, 40)}`);
    const valid = validateArgs(method, args);
    const fn = api[method] as (...a: unknown[]) => Promise<unknown>;
    const value = await fn.apply(api, valid);
    return { ok: true, value: value === undefined ? null : value };
  } catch (err) {
    return { ok: false, error: toErrorBody(err) };
  }
}
