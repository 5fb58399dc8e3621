/**
 * Preload of the customer display (sandboxed, context-isolated): exposes `window.posCustomer`, the
 * customer view and its changes only — no terminal API, settings, tokens, orders or printing.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { CUSTOMER_EVENT_CHANNEL, CUSTOMER_VIEW_CHANNEL, type ApiResult, type CustomerPreloadApi, type CustomerView } from '../shared/contracts/terminal-api';

const api: CustomerPreloadApi = {
  current: async () => {
    const r = (await ipcRenderer.invoke(CUSTOMER_VIEW_CHANNEL)) as ApiResult<CustomerView>;
    if (r.ok) return r.value;
    throw r.error;
  },
  onView: (listener) => {
    const h = (_e: unknown, v: CustomerView) => listener(v);
    ipcRenderer.on(CUSTOMER_EVENT_CHANNEL, h);
    return () => { ipcRenderer.removeListener(CUSTOMER_EVENT_CHANNEL, h); };
  },
};

contextBridge.exposeInMainWorld('posCustomer', api);
