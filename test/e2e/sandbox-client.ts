/** The tests' hands on the sandbox and relay: plays the buyer, shifts the clock, injects bill faults. */
import type { Order } from '../../shared/contracts/relay-api';
import type { RequestLogEntry } from '../../shared/sandbox/server';

async function post(url: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url} → ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

export interface PayResult {
  kind: 'combine' | 'basic';
  /** The combine number; a basic order's out_trade_no. */
  combine_out_trade_no: string;
  /** The initiator (combine) or the merchant (basic). */
  mchid: string;
  state: string;
  sub_orders: { mchid: string; out_trade_no: string; transaction_id: string }[];
}

export const sandboxPay = (sandboxUrl: string, codeUrl: string, extra: Record<string, unknown> = {}) =>
  post(`${sandboxUrl}/sandbox/pay`, { code_url: codeUrl, ...extra }) as Promise<unknown> as Promise<PayResult>;

export const shiftClock = (sandboxUrl: string, seconds: number) => post(`${sandboxUrl}/sandbox/control/clock`, { offset_seconds: seconds });

export const adjustBill = (sandboxUrl: string, adj: { out_trade_no: string; amount?: number; drop?: boolean }) =>
  post(`${sandboxUrl}/sandbox/control/bill-adjust`, adj);

export async function relayOrder(relayUrl: string, token: string, no: string): Promise<Order> {
  const res = await fetch(`${relayUrl}/v1/orders/${encodeURIComponent(no)}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`relay order ${no} → ${res.status} ${await res.text()}`);
  return (await res.json()) as Order;
}

/** One APIv3 request as the sandbox saw it: the sandbox's own type (a type import, no server code). */
export type SandboxRequest = RequestLogEntry;

/** The sandbox's request log, optionally only one merchant's and/or one path prefix (e.g. `/v3/bill/tradebill`). */
export async function sandboxRequests(sandboxUrl: string, filter: { mchid?: string; path?: string } = {}): Promise<SandboxRequest[]> {
  const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as [string, string][]);
  const res = await fetch(`${sandboxUrl}/sandbox/requests${q.size ? `?${q}` : ''}`);
  if (!res.ok) throw new Error(`sandbox requests → ${res.status}`);
  return ((await res.json()) as { requests: SandboxRequest[] }).requests;
}

/** The next refund (or the one numbered so) ends ABNORMAL or CLOSED instead of SUCCESS. */
export const armRefundOutcome = (sandboxUrl: string, arm: { outcome: 'SUCCESS' | 'ABNORMAL' | 'CLOSED'; out_refund_no?: string; count?: number }) =>
  post(`${sandboxUrl}/sandbox/control/refund-outcome`, arm);

export const sandboxFaults = (sandboxUrl: string, fault: { path?: string; method?: string; kind: string; count?: number; delay_ms?: number }) =>
  post(`${sandboxUrl}/sandbox/control/faults`, fault);

export async function clearSandboxFaults(sandboxUrl: string): Promise<void> {
  const res = await fetch(`${sandboxUrl}/sandbox/control/faults`, { method: 'DELETE' });
  if (!res.ok) throw new Error(`clear faults → ${res.status}`);
}
