/**
 * Many terminals (issue 13 item 2): notification answer latency with 2,000 terminals on
 * `/v1/events` and 200 more connecting at once (half fresh, half resuming from cursor 0, so
 * they get a `resync` snapshot), against the same notifications with no terminal connected,
 * in the same run. The store holds 1,200 open orders spread over the terminals and 20,000
 * finished ones; one terminal in 20 is a manager, whose snapshot holds every terminal's open
 * orders (at its 1,000-order cap). Target: notifications answered with p99 < 1 s.
 *
 * Processes: the relay; two "swarm" processes holding the terminals' sockets (2,000 steady,
 * 200 for the burst); this one posts signed notifications at a steady rate and measures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { initSandbox } from '../shared/sandbox/index';
import { loadCredentials } from '../shared/wechatpay/credentials';
import { apiV3Key, encryptResource } from '../shared/wechatpay/aead';
import { signBody } from '../shared/wechatpay/sign';
import { openDb } from '../shared/relay/db';
import { hashToken } from '../shared/relay/auth';
import { OrderStore } from '../shared/relay/store';
import { newCombineOutTradeNo, subOutTradeNo } from '../shared/relay/ids';
import { loadRelayConfig, startRelay } from '../shared/relay/index';

const SELF = fileURLToPath(import.meta.url);
const STEADY = Number(process.env.BENCH_TERMINALS ?? 2000);
const BURST = 200;
const RATE = Number(process.env.BENCH_NOTIFY_RATE ?? 20);
const SECONDS = 6;
const OPEN = 1200;
const HISTORY = 20_000;

// ---------------------------------------------------------------- child processes

async function serve(dir: string, dbPath: string): Promise<void> {
  const config = loadRelayConfig({
    WECHATPAY_CREDENTIALS_DIR: join(dir, 'merchant'), WECHATPAY_BASE_URL: 'http://127.0.0.1:9', RELAY_PUBLIC_URL: 'http://127.0.0.1:9',
    RELAY_PORT: '0', RELAY_DB: dbPath, RELAY_QUERY_AFTER_SECONDS: '3600', RELAY_LOG_LEVEL: 'warn', RELAY_MAX_CONNECTIONS: '10000',
  });
  const relay = await startRelay(config);
  console.log(JSON.stringify({ url: relay.url }));
  process.on('SIGTERM', () => void relay.close().then(() => process.exit(0)));
}

/** Holds sockets: connects them all on `go` (since=0 for every other one when asked), reports first-message times. */
async function swarm(url: string, tokensFile: string, resumeHalf: boolean): Promise<void> {
  const tokens = JSON.parse(readFileSync(tokensFile, 'utf8')) as string[];
  const sockets: WebSocket[] = [];
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line === 'stop') break;
    if (line !== 'go') continue;
    const t0 = performance.now();
    const firsts: number[] = [];
    let bytes = 0;
    let resync = 0;
    let failed = 0;
    await Promise.all(tokens.map((token, i) => new Promise<void>((resolve) => {
      const since = resumeHalf && i % 2 === 1 ? '?since=0' : '';
      // The bench's own clients skip UTF-8 validation: their CPU is not what is measured.
      const ws = new WebSocket(url.replace('http', 'ws') + '/v1/events' + since, { headers: { Authorization: `Bearer ${token}` }, skipUTF8Validation: true });
      sockets.push(ws);
      let first = true;
      ws.on('message', (d) => {
        if (!first) return;
        first = false;
        const s = String(d);
        firsts.push(performance.now() - t0);
        bytes = Math.max(bytes, s.length);
        if (s.startsWith('{"type":"snapshot","resync":true')) resync++;
        resolve();
      });
      ws.on('error', () => { failed++; resolve(); });
      ws.on('close', () => resolve());
    })));
    firsts.sort((a, b) => a - b);
    console.log(JSON.stringify({ ready: firsts.length, failed, resync, bytes, p50: pct(firsts, 50), p99: pct(firsts, 99), max: firsts[firsts.length - 1] ?? NaN }));
  }
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}

// ---------------------------------------------------------------- parent

const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;

function child(args: string[]): { proc: ChildProcess; lines: AsyncIterator<string> } {
  // BENCH_CPU_PROF=<dir>: profile the relay process.
  const prof = process.env.BENCH_CPU_PROF && args[0] === 'serve' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', SELF, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return { proc, lines };
}

async function nextJson(c: { lines: AsyncIterator<string> }): Promise<any> {
  for (;;) {
    const r = await c.lines.next();
    if (r.done) throw new Error('child ended');
    if (r.value.startsWith('{')) return JSON.parse(r.value);
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await done;
}

interface Note { headers: Record<string, string>; body: string }

function seed(dir: string, dbPath: string): { notes: Note[]; steady: string[]; burst: string[] } {
  const db = openDb(dbPath);
  const store = new OrderStore(db);
  const creds = loadCredentials(join(dir, 'merchant'));
  const mchids = creds.subMerchants.map((s) => s.mchid);
  const targets: { no: string; subs: { mchid: string; out_trade_no: string; amount: number }[] }[] = [];
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < HISTORY + OPEN; i++) {
      const open = i >= HISTORY;
      const created = open ? now - (OPEN - (i - HISTORY)) * 100 : now - 7 * 86_400_000 + i * 20_000;
      const no = newCombineOutTradeNo(created);
      const subs = [0, 1, 2].map((idx) => ({ out_trade_no: subOutTradeNo(no, idx), combine_out_trade_no: no, idx, mchid: mchids[idx % mchids.length]!, description: '商品（测试）', amount: 300 + idx + (i % 70), attach: null }));
      store.insert({
        row: { combine_out_trade_no: no, state: 'NOTPAY', total_amount: subs.reduce((a, s) => a + s.amount, 0), description: '堂食', created_at: new Date(created).toISOString(), created_ms: created,
          expires_at: new Date(created + 3_600_000).toISOString(), expires_ms: created + 3_600_000, updated_ms: created, terminal: `t-${i % (STEADY + BURST)}`, creation: 'CREATED',
          idempotency_key: null, request_hash: 'x', request_json: '', watch: 0, next_check_ms: now + 3_600_000 },
        subs,
      });
      store.markCreated(no, 'weixin://wxpay/bizpayurl?pr=abcdefg', created);
      if (!open) store.transition(no, { state: i % 9 === 0 ? 'CLOSED' : 'SUCCESS' }, created + 30_000);
      else targets.push({ no, subs });
    }
  })();
  // Tokens the way createTerminal makes them (random, only the hash stored), written in the same file.
  const insert = db.prepare('INSERT INTO terminals (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)');
  const terminals = Array.from({ length: STEADY + BURST }, (_, i) => {
    const token = randomBytes(32).toString('base64url');
    insert.run(`t-${i}`, i % 20 === 0 ? 'manager' : 'cashier', hashToken(token), new Date().toISOString());
    return token;
  });
  db.close();
  const cfg = JSON.parse(readFileSync(join(dir, 'sandbox', 'sandbox.json'), 'utf8'));
  const key = createPrivateKey(readFileSync(join(dir, 'sandbox', cfg.public_key_file)));
  const v3 = apiV3Key(cfg.apiv3_key);
  const notes = targets.map((o) => {
    const resource = {
      combine_appid: cfg.appid, combine_mchid: cfg.mchid, combine_out_trade_no: o.no,
      sub_orders: o.subs.map((s, i) => ({
        mchid: s.mchid, trade_type: 'NATIVE', trade_state: 'SUCCESS', bank_type: 'OTHERS', attach: o.no, success_time: new Date().toISOString().replace(/\.\d+Z$/, '+00:00'),
        transaction_id: '42000' + String(i) + o.no.slice(1), out_trade_no: s.out_trade_no, amount: { total_amount: s.amount, currency: 'CNY', payer_amount: s.amount, payer_currency: 'CNY' },
      })),
    };
    const body = JSON.stringify({
      id: randomUUID(), create_time: '2026-01-01T12:00:00+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
      resource: { original_type: 'transaction', ...encryptResource(JSON.stringify(resource), v3, 'transaction') },
    });
    return { headers: { 'content-type': 'application/json', ...signBody(key, cfg.public_key_id, body) }, body };
  });
  return { notes, steady: terminals.slice(0, STEADY), burst: terminals.slice(STEADY) };
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

function send(url: string, method: string, path: string, n?: Note): Promise<{ ms: number; status: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request(url + path, { method, agent, headers: n ? { ...n.headers, 'content-length': Buffer.byteLength(n.body) } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0 }));
    });
    req.on('error', () => resolve({ ms: performance.now() - t0, status: 0 }));
    req.end(n?.body);
  });
}

/** Notifications at RATE/s for `seconds` (and /healthz every 50 ms); `during(t)` is called once at t = 1 s. */
async function stream(url: string, notes: Note[], seconds: number, during?: () => void): Promise<{ notify: number[]; health: number[]; bad: number }> {
  const notify: number[] = [];
  const health: number[] = [];
  let bad = 0;
  const start = performance.now();
  const pending: Promise<void>[] = [];
  let fired = false;
  let h = start;
  for (let i = 0; i < seconds * RATE; i++) {
    const due = start + (i * 1000) / RATE;
    while (performance.now() < due) {
      if (performance.now() >= h) {
        h += 50;
        pending.push(send(url, 'GET', '/healthz').then((r) => { health.push(r.ms); }));
      }
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(due, h) - performance.now())));
    }
    if (!fired && during && performance.now() - start >= 1000) {
      fired = true;
      during();
    }
    pending.push(send(url, 'POST', '/wechatpay/notify', notes.shift()!).then((r) => {
      notify.push(r.ms);
      if (r.status !== 204) bad++;
    }));
  }
  await Promise.all(pending);
  notify.sort((a, b) => a - b);
  health.sort((a, b) => a - b);
  return { notify, health, bad };
}

const fmt = (s: number[]) => `p50 ${pct(s, 50).toFixed(1)} ms  p99 ${pct(s, 99).toFixed(1)} ms  max ${s[s.length - 1]!.toFixed(1)} ms`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-events-'));
  const procs: ChildProcess[] = [];
  try {
    await initSandbox(dir);
    const dbPath = join(dir, 'relay.db');
    const { notes, steady, burst } = seed(dir, dbPath);
    writeFileSync(join(dir, 'steady.json'), JSON.stringify(steady));
    writeFileSync(join(dir, 'burst.json'), JSON.stringify(burst));
    const relay = child(['serve', dir, dbPath]);
    procs.push(relay.proc);
    const { url } = await nextJson(relay);
    console.log(`store: ${OPEN} open + ${HISTORY} finished orders; ${STEADY + BURST} terminals; notifications at ${RATE}/s for ${SECONDS} s per phase`);

    // Warm-up (JIT, keep-alive sockets), then the baseline: nobody connected.
    await stream(url, notes, 1);
    const base = await stream(url, notes, SECONDS);

    const a = child(['swarm', url, join(dir, 'steady.json'), '0']);
    const b = child(['swarm', url, join(dir, 'burst.json'), '1']);
    procs.push(a.proc, b.proc);
    const t0 = performance.now();
    a.proc.stdin!.write('go\n');
    const steadyUp = await nextJson(a);
    const upS = (performance.now() - t0) / 1000;
    let burstReport: Promise<any> | null = null;
    const loaded = await stream(url, notes, SECONDS, () => {
      b.proc.stdin!.write('go\n');
      burstReport = nextJson(b);
    });
    const burstUp = await burstReport!;
    a.proc.stdin!.write('stop\n');
    b.proc.stdin!.write('stop\n');

    console.log(`baseline, no terminals:        notification answer ${fmt(base.notify)};  /healthz ${fmt(base.health)}`);
    console.log(`${STEADY} connected (took ${upS.toFixed(1)} s, first message p99 ${steadyUp.p99.toFixed(0)} ms, ${steadyUp.failed} failed), ${BURST} connecting at t=1 s:`);
    console.log(`                               notification answer ${fmt(loaded.notify)};  /healthz ${fmt(loaded.health)}`);
    console.log(`  the ${BURST} newcomers: first message p50 ${burstUp.p50.toFixed(0)} ms  p99 ${burstUp.p99.toFixed(0)} ms (${burstUp.resync} resync snapshots, largest first message ${(burstUp.bytes / 1024).toFixed(0)} KB, ${burstUp.failed} failed)`);
    console.log(`ratio loaded/baseline notification p99 = ${(pct(loaded.notify, 99) / pct(base.notify, 99)).toFixed(1)}; loaded p99 ${pct(loaded.notify, 99).toFixed(0)} ms (target < 1000)${base.bad + loaded.bad ? `; ${base.bad + loaded.bad} notifications not answered 204` : ''}`);
  } finally {
    for (const p of procs.reverse()) await stop(p);
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'serve') void serve(process.argv[3]!, process.argv[4]!);
else if (process.argv[2] === 'swarm') void swarm(process.argv[3]!, process.argv[4]!, process.argv[5] === '1');
else main().catch((err) => {
  console.error(err);
  process.exit(1);
});
