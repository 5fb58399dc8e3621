/**
 * Engine factories for the store seam's repository tests: the same suite runs on every entry of
 * ENGINES (describe.each). SQLite: a fresh file per open(). PostgreSQL: ONE throwaway cluster per
 * test file (started on first use), a fresh migrated database per open(); the test file calls
 * stopEngines() in afterAll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RelayStore } from '../../shared/relay/repo-types';
import { migratePg, openPg, openPgStore, type OpenPgStoreOptions, type PgStore } from '../../shared/relay/pg/index';
import { startPgCluster, type PgCluster } from './pg-cluster';

export interface OpenedStore {
  store: RelayStore;
  close(): Promise<void>;
}

export interface Engine {
  name: 'sqlite' | 'postgresql';
  open(): Promise<OpenedStore>;
}

let cluster: Promise<PgCluster> | undefined;
let databases = 0;

/** A fresh database at the newest schema on this file's cluster; its URL. */
export async function freshPgDatabase(): Promise<string> {
  const c = await (cluster ??= startPgCluster({ database: 'stores_base' }));
  const url = await c.createDatabase(`store_${++databases}`);
  const pool = openPg(url, { max: 1 });
  try {
    await migratePg(pool);
  } finally {
    await pool.end();
  }
  return url;
}

/** Another relay on a database (PostgreSQL only: several relays share one). */
export function openPgRelay(url: string, opts: OpenPgStoreOptions = {}): Promise<PgStore> {
  return openPgStore(url, { poolMax: 5, ...opts });
}

export const ENGINES: Engine[] = [
  {
    name: 'sqlite',
    async open() {
      // Imported on use: a file of one engine mid-change must not stop the other engine's tests.
      const { openSqliteStore } = await import('../../shared/relay/sqlite/index');
      const dir = mkdtempSync(join(tmpdir(), 'store-'));
      const store = openSqliteStore(join(dir, 'relay.db'), { checkpoints: false });
      return {
        store,
        close: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgresql',
    async open() {
      const store = await openPgRelay(await freshPgDatabase());
      return { store, close: () => store.close() };
    },
  },
];

/** Stops this file's PostgreSQL cluster (if one was started). */
export async function stopEngines(): Promise<void> {
  const c = cluster;
  cluster = undefined;
  if (c) await (await c).stop();
}
