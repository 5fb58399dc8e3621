/** kill -9 during a burst of creates and payments: after a restart every acknowledged one is there. */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { initSandbox } from '../../shared/sandbox';
import { loadCredentials } from '../../shared/wechatpay/credentials';
import { combineRequest, merchantsOf, send, type Env } from './helpers';

const CLI = join(__dirname, '../../shared/sandbox/cli.ts');
const ROOT = join(__dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'sandbox-crash-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** `serve DIR` as its own process (node --import tsx, no wrapper: the signal reaches it), port 0. */
async function serve(): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', dir], { cwd: ROOT, env: { ...process.env, SANDBOX_PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const exited = new Promise((r) => child.once('exit', r));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => {
      const j = JSON.parse(l);
      if (j.event === 'listening') resolve(j.url);
      else reject(new Error(l));
    });
    child.once('exit', (code) => reject(new Error(`sandbox exited ${code}`)));
  });
  return { child, url, exited };
}

describe('sandbox durability', () => {
  it('SIGKILL mid-burst loses no acknowledged create or payment, nor a pending notification', async () => {
    const init = await initSandbox(dir);
    const creds = loadCredentials(init.merchantDir);
    const env = { url: '', creds, merchants: merchantsOf(creds) } as unknown as Env;
    const seller = init.participants[0]!.mchid;
    const first = await serve();
    env.url = first.url;
    // Acknowledged creates (combine number, or basic out_trade_no) → the query that must find them.
    const created = new Map<string, string>();
    const paid = new Set<string>(); // acknowledged payments
    let killed = false;
    let n = 0;
    const worker = async () => {
      while (!killed) {
        // Every third sale is a basic Native one of a participant, signed as that participant.
        const basic = ++n % 3 === 0;
        const req = combineRequest(env);
        const no = req.combine_out_trade_no;
        try {
          const c = basic
            ? await send(env, 'POST', '/v3/pay/transactions/native', { appid: env.creds.appid, mchid: seller, description: '单点', out_trade_no: no, notify_url: 'http://127.0.0.1:9/notify', amount: { total: 500 } }, { as: seller })
            : await send(env, 'POST', '/v3/combine-transactions/native', req);
          if (c.status !== 200) throw new Error(`create ${c.status}`);
          created.set(no, basic ? `/v3/pay/transactions/out-trade-no/${no}?mchid=${seller}` : `/v3/combine-transactions/out-trade-no/${no}`);
          const p = await fetch(env.url + '/sandbox/pay', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code_url: c.json.code_url }) });
          if (p.status >= 200 && p.status < 300) paid.add(no);
          else throw new Error(`pay ${p.status}`);
        } catch (err) {
          if (!killed) throw err;
        }
      }
    };
    const workers = Array.from({ length: 6 }, worker);
    // Kill while requests are in flight, once enough were acknowledged.
    while (paid.size < 40) await new Promise((r) => setTimeout(r, 5));
    first.child.kill('SIGKILL');
    killed = true;
    await first.exited;
    await Promise.all(workers);
    expect(paid.size).toBeGreaterThanOrEqual(40);

    const second = await serve();
    env.url = second.url;
    expect([...created.values()].some((q) => q.startsWith('/v3/pay/'))).toBe(true);
    for (const [no, path] of created) {
      const basic = path.startsWith('/v3/pay/');
      const q = await send(env, 'GET', path, undefined, { as: basic ? seller : undefined });
      expect(q.status, no).toBe(200);
      if (paid.has(no)) expect(basic ? [q.json.trade_state] : q.json.sub_orders.map((s: any) => s.trade_state), no).toEqual(basic ? ['SUCCESS'] : ['SUCCESS', 'SUCCESS']);
    }
    // Each acknowledged payment's notification is still owed (its notify_url never answers).
    const pending = new Set(((await (await fetch(env.url + '/sandbox/notifications')).json()).pending as { order: string }[]).map((p) => p.order));
    for (const no of paid) expect(pending.has(no), no).toBe(true);
    second.child.kill('SIGTERM');
    await second.exited;
  }, 60_000);
});
