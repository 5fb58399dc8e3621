/**
 * `npm run relay -- migrate` against a real throwaway PostgreSQL; serving refuses a database at another
 * schema version with one line; add-terminal writes to the database RELAY_DATABASE_URL names.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSandbox } from '../../shared/sandbox/index';
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

  it('serving from a database at another schema version stops at start with one line saying to migrate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-cli-'));
    const { merchantDir } = await initSandbox(dir);
    const r = await relayCli(['serve'], {
      RELAY_DATABASE_URL: await cluster.createDatabase('unmigrated'),
      WECHATPAY_CREDENTIALS_DIR: merchantDir,
      RELAY_PUBLIC_URL: 'http://127.0.0.1:1',
      RELAY_PORT: '0',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^relay: the database is at schema version 0, this relay needs \d+: run `npm run relay -- migrate` first/);
  });

  it('add-terminal with RELAY_DATABASE_URL writes the token to PostgreSQL (only its hash), never to RELAY_DB', async () => {
    const r = await relayCli(['add-terminal', 'till-1', '--role', 'cashier'], { RELAY_DATABASE_URL: cluster.url, RELAY_DB: '/nonexistent/dir/relay.db' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const token = r.stdout.trim().split('\n').pop()!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const c = new pg.Client({ connectionString: cluster.url });
    await c.connect();
    try {
      const rows = (await c.query('SELECT name, role, token_hash FROM terminals')).rows;
      expect(rows).toEqual([{ name: 'till-1', role: 'cashier', token_hash: createHash('sha256').update(token).digest('hex') }]);
    } finally {
      await c.end();
    }
    expect(existsSync('/nonexistent/dir')).toBe(false);
    // The same name again: one line, the name taken in PostgreSQL.
    const again = await relayCli(['add-terminal', 'till-1', '--role', 'cashier'], { RELAY_DATABASE_URL: cluster.url });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('relay: a terminal named till-1 exists\n');
  });
});
