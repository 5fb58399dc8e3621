/**
 * Turns an API failure into words a cashier understands. The code is still shown in small
 * print (for support calls) but never alone, and never a stack trace.
 */
import { toFailure } from './api';
import { t, type MessageKey } from './i18n';
import type { PrinterFailure } from './contract';

export interface FriendlyError {
  text: string;
  code: string;
  retryAfter?: number;
}

export function friendly(err: unknown): FriendlyError {
  const f = toFailure(err);
  const code = f.code.toUpperCase();
  const out = (text: string): FriendlyError => ({ text, code: f.code, retryAfter: f.retry_after_seconds });
  if (code === 'CLOSE_TOO_EARLY') return out(t('err.closeTooEarly', { s: f.retry_after_seconds ?? 0 }));
  if (code === 'ORDER_PAID' || code === 'ORDERPAID') return out(t('err.orderPaid'));
  if (code.startsWith('UPSTREAM_') || code === 'SYSTEM_ERROR' || code === 'SERVICE_UNAVAILABLE') return out(t('err.upstream'));
  if (code === 'FREQUENCY_LIMITED' || code === 'RATE_LIMITED' || code === 'TOO_MANY_REQUESTS') return out(t('err.rateLimited'));
  if (code === 'NETWORK' || code === 'OFFLINE' || code.startsWith('RELAY_') || code === 'TIMEOUT' || code === 'UNCONFIGURED')
    return out(t('err.offline'));
  if (code === 'UNAUTHORIZED' || code === 'INVALID_TOKEN' || code === 'BAD_TOKEN') return out(t('err.unauthorized'));
  if (code === 'SESSION_EXPIRED') return out(t('err.sessionExpired'));
  if (code === 'FORBIDDEN' || code === 'NOT_MANAGER') return out(t('err.forbidden'));
  if (code === 'NOT_FOUND' || code === 'ORDER_NOT_FOUND' || code === 'ORDER_NOT_EXIST') return out(t('err.notFound'));
  if (code === 'ORDER_FINAL') return out(t('err.orderFinal'));
  if (code === 'USERPAYING' || code === 'USER_PAYING') return out(t('err.userPaying'));
  if (code === 'BILL_RUN_IN_PROGRESS') return out(t('err.billRunning'));
  if (code === 'ORDER_NOT_PAID') return out(t('err.orderNotPaid'));
  if (code === 'STATEMENT_CREATING' || code === 'BILL_NOT_READY') return out(t('err.billNotReady'));
  if (code.startsWith('PRINTER')) return out(t('err.printer'));
  if (code === 'BAD_REQUEST' || code === 'BAD_INPUT' || code === 'INVALID_FIELD' || code === 'VALIDATION' || code === 'VALIDATION_ERROR' || code === 'INVALID_ARGUMENT' || code === 'PARAM_ERROR' || code === 'INVALID_REQUEST')
    return out(badFieldText(f.field, f.message));
  return out(t('err.unknown'));
}

export function printerFailureText(failure: PrinterFailure | null): string {
  switch (failure) {
    case 'offline': return t('printer.offline');
    case 'timeout': return t('printer.timeout');
    case 'refused': return t('printer.refused');
    default: return t('printer.error');
  }
}

const FIELD_LABELS: Record<string, MessageKey> = {
  bill_date: 'field.bill_date',
  sub_orders: 'field.sub_orders',
  amount: 'field.amount',
  description: 'field.description',
  date: 'field.date',
  q: 'field.q',
};

/**
 * A refused field in the screen's language. The services' message often starts with the field's
 * name already ("bill_date: … is in the future"): it is never repeated, and known rules get their
 * own words instead of the English text.
 */
export function badFieldText(field: string | undefined, message: string): string {
  // "createOrder: sub_orders: …" → "…": prefixes added on the way (method, field) are dropped.
  const at = field ? message.indexOf(`${field}: `) : -1;
  const detail = field && at >= 0 ? message.slice(at + field.length + 2) : message;
  if (field === 'bill_date' && /future/i.test(detail)) return t('err.billDateFuture');
  if (field === 'sub_orders' || field?.startsWith('sub_orders')) {
    if (field === 'sub_orders' && /\bgot 1\b/.test(detail)) return t('err.singleNotSupported');
    if (field === 'sub_orders') return t('err.subOrders', { detail });
  }
  const base = field?.replace(/^sub_orders\[\d+\]\./, '');
  if (base && base in FIELD_LABELS) return t('err.badField', { field: t(FIELD_LABELS[base]!) });
  return t('err.badInput', { detail: field ? `${field}: ${detail}` : detail });
}
