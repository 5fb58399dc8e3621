/**
 * `npm run relay -- migrate` against a real throwaway PostgreSQL, and the honest refusals while
 * serving from PostgreSQL is not built: serve and add-terminal with RELAY_DATABASE_URL stop with one line.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from '../../shared/relay/pg/index';

let cluster: PgCluster;

function relayCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const base = { ...process.env };
    delete base.RELAY_DATABASE_URL;
    const child = spawn(process.execPath, ['--import', 'tsx', 'shared/relay/cli.ts', ...args], { env: { ...base, RELAY_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  cluster = await startPgCluster({ database: 'cli_relay' });
});
afterAll(async () => {
  await cluster?.stop();
});

describe('relay CLI and RELAY_DATABASE_URL', () => {
  it('migrate brings the database to the schema, then reports nothing to apply', async () => {
    const first = await relayCli(['migrate'], { RELAY_DATABASE_URL: cluster.url });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout.trim())).toEqual({ event: 'migrated', from: 0, to: PG_SCHEMA_VERSION, applied: PG_MIGRATIONS.map((m) => m.version) });
    const c = new pg.Client({ connectionString: cluster.url });
    await c.connect();
    try {
      expect((await c.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v).toBe(PG_SCHEMA_VERSION);
    } finally {
      await c.end();
    }
    const again = await relayCli(['migrate'], { RELAY_DATABASE_URL: cluster.url });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.trim())).toMatchObject({ from: PG_SCHEMA_VERSION, applied: [] });
  });

  it('migrate without RELAY_DATABASE_URL says so on one line', async () => {
    const r = await relayCli(['migrate'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('relay: migrate needs RELAY_DATABASE_URL\n');
  });

  it('migrate with a malformed URL names the setting without echoing it', async () => {
    const r = await relayCli(['migrate'], { RELAY_DATABASE_URL: 'mysql://u:secret@127.0.0.1/x' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^relay: config error: RELAY_DATABASE_URL: must be postgres:\/\//);
    expect(r.stderr).not.toContain('secret');
  });

  it('serving with RELAY_DATABASE_URL stops at start with one line: not built yet', async () => {
    const r = await relayCli(['serve'], {
      RELAY_DATABASE_URL: cluster.url,
      WECHATPAY_CREDENTIALS_DIR: '/nonexistent',
      RELAY_PUBLIC_URL: 'http://127.0.0.1:1',
      RELAY_PORT: '0',
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^relay: config error: RELAY_DATABASE_URL: PostgreSQL serving is not built yet/);
  });

  it('add-terminal with RELAY_DATABASE_URL refuses instead of writing the token to SQLite', async () => {
    const r = await relayCli(['add-terminal', 'till-1', '--role', 'cashier'], { RELAY_DATABASE_URL: cluster.url, RELAY_DB: '/nonexistent/dir/relay.db' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^relay: add-terminal with RELAY_DATABASE_URL: PostgreSQL is not built yet/);
  });
});
