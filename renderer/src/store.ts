/**
 * App state shared by the screens: fed by API answers and the pushed event stream.
 * One small observable; screens re-render on change (the state is small, so no selectors).
 */
import { useEffect, useState } from 'preact/hooks';
import type { Alert, Order, SubMerchantInfo } from './contract';
import type {
  ConnectionState, PreloadApi, PrintJob, SessionInfo, Settings, TerminalEvent,
} from './contract';

export interface BillProgress {
  done: number;
  total: number;
  stage: string;
  mchid?: string;
}

export interface State {
  session: SessionInfo | null;
  settings: Settings | null;
  merchants: SubMerchantInfo[];
  orders: Record<string, Order>;
  printJobs: Record<string, PrintJob>;
  billProgress: Record<string, BillProgress>;
  alerts: Alert[];
  connection: ConnectionState;
}

let state: State = {
  session: null,
  settings: null,
  merchants: [],
  orders: {},
  printJobs: {},
  billProgress: {},
  alerts: [],
  connection: 'connecting',
};

const subscribers = new Set<() => void>();

export function getState(): State {
  return state;
}

export function update(patch: Partial<State> | ((s: State) => Partial<State>)): void {
  const p = typeof patch === 'function' ? patch(state) : patch;
  state = { ...state, ...p };
  for (const s of subscribers) s();
}

export function useAppState(): State {
  const [, force] = useState(0);
  useEffect(() => {
    const fn = () => force((n) => n + 1);
    subscribers.add(fn);
    return () => {
      subscribers.delete(fn);
    };
  }, []);
  return state;
}

/** Keeps the newest version of an order: pushes can overtake a slower API answer. */
export function mergeOrders(orders: Order[]): void {
  if (orders.length === 0) return;
  update((s) => {
    const next = { ...s.orders };
    for (const o of orders) {
      const old = next[o.combine_out_trade_no];
      if (old && old.version !== undefined && o.version !== undefined && o.version < old.version) continue;
      next[o.combine_out_trade_no] = o;
    }
    return { orders: next };
  });
}

export function mergePrintJobs(jobs: PrintJob[]): void {
  if (jobs.length === 0) return;
  update((s) => {
    const next = { ...s.printJobs };
    for (const j of jobs) next[j.id] = j;
    return { printJobs: next };
  });
}

export function handleEvent(e: TerminalEvent): void {
  switch (e.type) {
    case 'snapshot':
      mergeOrders(e.orders);
      break;
    case 'order.updated':
      mergeOrders([e.order]);
      break;
    case 'print.job':
      mergePrintJobs([e.job]);
      break;
    case 'bill.progress':
      update((s) => ({
        billProgress: { ...s.billProgress, [e.bill_date]: { done: e.done, total: e.total, stage: e.stage, mchid: e.mchid } },
      }));
      break;
    case 'alert':
      update((s) => (s.alerts.some((a) => a.id === e.alert.id) ? {} : { alerts: [e.alert, ...s.alerts] }));
      break;
    case 'connection':
      update((s) => ({ connection: e.state, session: s.session ? { ...s.session, connection: e.state } : s.session }));
      break;
    case 'heartbeat':
      break;
  }
}

/** Jobs of one order, newest first. */
export function jobsFor(s: State, combineOutTradeNo: string): PrintJob[] {
  return Object.values(s.printJobs)
    .filter((j) => j.combine_out_trade_no === combineOutTradeNo)
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
}

let apiRef: PreloadApi | null = null;
export function setApi(api: PreloadApi): void {
  apiRef = api;
}
export function api(): PreloadApi {
  if (!apiRef) throw new Error('API not connected');
  return apiRef;
}
