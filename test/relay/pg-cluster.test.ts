/** The throwaway PostgreSQL cluster helper: it really starts, serves SQL on loopback, and stop() removes it. */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPgCluster } from '../helpers/pg-cluster';

describe('throwaway PostgreSQL cluster', () => {
  it('starts on 127.0.0.1, creates its database, and stop() shuts it down and removes its folder', async () => {
    const cluster = await startPgCluster({ database: 'cluster_check' });
    const pool = new pg.Pool({ connectionString: cluster.url, max: 1 });
    let dataDir = '';
    try {
      const r = await pool.query("SELECT current_database() AS db, current_setting('server_version_num')::int AS v, current_setting('data_directory') AS dir, inet_server_addr()::text AS addr");
      expect(r.rows[0].db).toBe('cluster_check');
      expect(r.rows[0].v).toBeGreaterThanOrEqual(150000);
      expect(r.rows[0].addr).toBe('127.0.0.1/32');
      dataDir = r.rows[0].dir;
      expect(existsSync(dataDir)).toBe(true);
    } finally {
      await pool.end();
      await cluster.stop();
    }
    expect(existsSync(dataDir)).toBe(false);
    const after = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 2000 });
    after.on('error', () => {});
    await expect(after.connect()).rejects.toThrow();
  });
});
