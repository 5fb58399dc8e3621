/**
 * Bill reconciliation at scale (`npm run bench -- bill-reconciliation`): a relay process, with
 * 500,000 combined orders (1,000,000 paid sub-orders of three merchants) in its SQLite store,
 * answers `POST /v1/bills/trade`: each merchant applies for its own bill signed with its own
 * keys and streams it (1,000,000 bill rows in all, gzip, SHA1-checked), and the relay compares.
 * Printed: the run's time, the relay process's peak RSS (target < 200 MB), `/healthz` latency
 * while it runs, and the bill parse throughput against `gunzip -c | sha1sum` on the same files
 * in the same run (target ≥ 0.5×).
 *
 * WeChat Pay's side is a small signed server here (the simulator's bill generation is not made
 * for a million rows): it answers `GET /v3/bill/tradebill` for the merchant named in the
 * Authorization header, signed with that merchant's WeChat Pay public-key pair, and serves the
 * file. A few differences are planted so the comparison has something to find.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { addToSummary, formatTradeBillHeader, formatTradeBillRow, formatTradeBillSummary, paymentBillRecord } from '../shared/wechatpay/bill-writer';
import { verifiedBillStream } from '../shared/wechatpay/bill';
import { parseAuthorization, signBody } from '../shared/wechatpay/sign';
import type { TradeBillSummary } from '../shared/wechatpay/models';
import type { ReconciliationReport } from '../shared/contracts/relay-api';
import WebSocket from 'ws';

const self = fileURLToPath(import.meta.url);
const ROWS = Number(process.env.BENCH_RECON_ROWS ?? 1_000_000);
const BILL_DATE = '2026-03-14';
const DAY_START = Date.parse(`${BILL_DATE}T00:00:00+08:00`);

// ---------------------------------------------------------------- child: the relay process
if (process.argv[2] === '--relay-child') {
  const { loadRelayConfig, startRelay } = await import('../shared/relay/index');
  const relay = await startRelay(loadRelayConfig(process.env));
  process.stdout.write(JSON.stringify({ event: 'listening', url: relay.url, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
  // What the memory is made of at its peak (sampled): V8 heap, buffers, the rest (SQLite, code).
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peak.rss) Object.assign(peak, { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers });
  }, 50).unref();
  process.stdin.on('data', async () => {
    await relay.close();
    process.stdout.write(JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS, peak }) + '\n');
    process.exit(0);
  });
  await new Promise(() => {});
}

// ---------------------------------------------------------------- child: parse only
if (process.argv[2] === '--parse-child') {
  const pairs = JSON.parse(process.argv[3]!) as [string, string][];
  const t0 = process.hrtime.bigint();
  let rows = 0;
  for (const [file, hash] of pairs) {
    const s = verifiedBillStream(createReadStream(file, { highWaterMark: 256 * 1024 }), { hash_type: 'SHA1', hash_value: hash }, { gzip: true });
    for await (const b of s.batches()) rows += b.length;
    await s.summary();
  }
  process.stdout.write(JSON.stringify({ rows, ms: Number(process.hrtime.bigint() - t0) / 1e6 }) + '\n');
  process.exit(0);
}

// ---------------------------------------------------------------- setup
interface Merchant {
  mchid: string;
  pubId: string;
  wx: { privateKey: KeyObject; publicKey: KeyObject };
  file: string;
  sha1: string;
  bytes: number;
  rows: number;
}

const pem = (k: KeyObject, type: 'pkcs8' | 'spki') => k.export({ type, format: 'pem' }) as string;

function writeMerchantFolder(dir: string, m: Merchant, extra: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const api = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'apiclient_key.pem'), pem(api.privateKey, 'pkcs8'), { mode: 0o600 });
  writeFileSync(join(dir, 'wechatpay_public_key.pem'), pem(m.wx.publicKey, 'spki'));
  writeFileSync(join(dir, 'merchant.json'), JSON.stringify({
    mchid: m.mchid, cert_serial: createHash('sha1').update(m.mchid).digest('hex').toUpperCase(), apiv3_key: 'BenchApiV3Key0123456789abcdefghi'.slice(0, 32),
    wechatpay_public_key_id: m.pubId, ...extra,
  }), { mode: 0o600 });
}

const subNo = (i: number) => `S20260314${String(i).padStart(10, '0')}`;
const orderNo = (k: number) => `C20260314${String(k).padStart(10, '0')}`;
const amountOf = (i: number) => 100 + ((i * 37) % 50_000);
const paidMs = (k: number) => DAY_START + 8 * 3600_000 + (k % (12 * 3600)) * 1000;

/** Sub-order i belongs to order i>>1 and to merchant i % 3. Planted: the bill differs on a few. */
const PLANTED = { amount: [11, 500_001], missing: [22, 700_002], unknown: 3 };

async function generateBills(dir: string, merchants: Merchant[]): Promise<void> {
  const goods = ['门店A-午餐套餐', '门店A-饮品', '烘焙-可颂', '书店-杂志'];
  await Promise.all(merchants.map(async (m, mi) => {
    const gz = createGzip({ level: 1 });
    const out = createWriteStream(m.file);
    gz.pipe(out);
    const sha1 = createHash('sha1');
    const write = async (s: string) => {
      const b = Buffer.from(s, 'utf8');
      sha1.update(b);
      m.bytes += b.length;
      if (!gz.write(b)) await once(gz, 'drain');
    };
    const summary: TradeBillSummary = { total_count: 0, settlement_total_fee: 0, refund_fee: 0, coupon_refund_fee: 0, fee_milli_fen: 0, total_fee: 0, applied_refund_fee: 0 };
    await write(formatTradeBillHeader('ALL', '\r\n', true));
    let batch = '';
    const row = (no: string, k: number, total: number) => {
      const r = paymentBillRecord({
        trade_time: new Date(paidMs(k) + 8 * 3600_000).toISOString().slice(0, 19).replace('T', ' '),
        appid: 'wxd678efh567hg6787', mchid: m.mchid, transaction_id: `42000026012026031${no.slice(-10)}`,
        out_trade_no: no, openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', total_fee: total, description: goods[k % 4]!, attach: orderNo(k),
      });
      addToSummary(summary, r);
      m.rows++;
      return formatTradeBillRow(r) + '\r\n';
    };
    for (let i = mi; i < ROWS; i += 3) {
      if (PLANTED.missing.includes(i)) continue;
      batch += row(subNo(i), i >> 1, PLANTED.amount.includes(i) ? amountOf(i) + 1 : amountOf(i));
      if (batch.length > 256 * 1024) {
        await write(batch);
        batch = '';
      }
    }
    if (mi === 0) for (let u = 0; u < PLANTED.unknown; u++) batch += row(`SFOREIGN${String(u).padStart(6, '0')}`, u, 555);
    await write(batch + formatTradeBillSummary(summary));
    gz.end();
    await once(out, 'close');
    m.sha1 = sha1.digest('hex');
  }));
}

async function populate(dbPath: string, merchants: Merchant[]): Promise<void> {
  const { openDb } = await import('../shared/relay/db');
  const db = openDb(dbPath);
  const insOrder = db.prepare(`INSERT INTO orders (combine_out_trade_no, state, total_amount, description, created_at, created_ms, expires_at, expires_ms,
      paid_at, paid_ms, updated_ms, terminal, creation, request_hash, request_json, watch, next_check_ms, transaction_ids)
    VALUES (?, 'SUCCESS', ?, NULL, ?, ?, ?, ?, ?, ?, ?, 'till-1', 'CREATED', 'bench', '{}', 0, 0, ?)`);
  const insSub = db.prepare(`INSERT INTO sub_orders (out_trade_no, combine_out_trade_no, idx, mchid, description, amount, state) VALUES (?, ?, ?, ?, '商品', ?, 'SUCCESS')`);
  const orders = ROWS >> 1;
  const chunk = 50_000;
  for (let from = 0; from < orders; from += chunk) {
    db.transaction(() => {
      for (let k = from; k < Math.min(orders, from + chunk); k++) {
        const a = 2 * k;
        const b = a + 1;
        const paid = paidMs(k);
        const created = paid - 60_000;
        const ids = JSON.stringify({ [subNo(a)]: `42000026012026031${subNo(a).slice(-10)}`, [subNo(b)]: `42000026012026031${subNo(b).slice(-10)}` });
        insOrder.run(orderNo(k), amountOf(a) + amountOf(b), new Date(created).toISOString(), created, new Date(created + 1800_000).toISOString(), created + 1800_000,
          new Date(paid).toISOString(), paid, paid, ids);
        insSub.run(subNo(a), orderNo(k), 0, merchants[a % 3]!.mchid, amountOf(a));
        insSub.run(subNo(b), orderNo(k), 1, merchants[b % 3]!.mchid, amountOf(b));
      }
    })();
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** WeChat Pay's bill endpoints, signed per merchant. */
function wechatPay(merchants: Merchant[]): Promise<Server> {
  const byMchid = new Map(merchants.map((m) => [m.mchid, m]));
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = parseAuthorization(req.headers.authorization);
    const m = auth ? byMchid.get(auth.mchid) : undefined;
    if (!m) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ code: 'SIGN_ERROR', message: 'unknown merchant' }));
      return;
    }
    if (url.pathname === '/v3/bill/tradebill') {
      const { port } = server.address() as AddressInfo;
      const body = Buffer.from(JSON.stringify({ hash_type: 'SHA1', hash_value: m.sha1, download_url: `http://127.0.0.1:${port}/v3/billdownload/file?token=${m.mchid}` }));
      res.writeHead(200, { 'Content-Type': 'application/json', ...signBody(m.wx.privateKey, m.pubId, body) });
      res.end(body);
      return;
    }
    if (url.pathname === '/v3/billdownload/file') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      createReadStream(m.file, { highWaterMark: 256 * 1024 }).pipe(res);
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function line(p: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const on = (d: Buffer) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        p.stdout!.off('data', on);
        resolve(buf.slice(0, i));
      }
    };
    p.stdout!.on('data', on);
    p.once('exit', (code) => reject(new Error(`child exited ${code}`)));
  });
}

function runParseChild(pairs: [string, string][]): Promise<{ rows: number; ms: number }> {
  const p = spawn(process.execPath, ['--import', 'tsx', self, '--parse-child', JSON.stringify(pairs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return line(p).then((l) => JSON.parse(l));
}

const q = (xs: number[], f: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * f))]!;

// ---------------------------------------------------------------- main
const dir = mkdtempSync(join(tmpdir(), 'bill-recon-bench-'));
try {
  const t0 = performance.now();
  const merchants: Merchant[] = ['1900000109', '1900000110', '1900000111'].map((mchid, i) => ({
    mchid, pubId: `PUB_KEY_ID_01${mchid}00000000000${i}`, wx: generateKeyPairSync('rsa', { modulusLength: 2048 }), file: join(dir, `bill-${mchid}.csv.gz`), sha1: '', bytes: 0, rows: 0,
  }));
  // The initiator sells at its own counter (root keys); the two others have merchants/<mchid>/.
  const creds = join(dir, 'merchant');
  writeMerchantFolder(creds, merchants[0]!, { appid: 'wxd678efh567hg6787', sub_merchants: merchants.map((m, i) => ({ mchid: m.mchid, name: `商户${i + 1}` })) });
  for (const m of merchants.slice(1)) writeMerchantFolder(join(creds, 'merchants', m.mchid), m, {});
  await generateBills(dir, merchants);
  const dbPath = join(dir, 'relay.db');
  await populate(dbPath, merchants);
  const bytes = merchants.reduce((a, m) => a + m.bytes, 0);
  const billRows = merchants.reduce((a, m) => a + m.rows, 0);
  console.log(`\nBill reconciliation: ${billRows.toLocaleString('en')} bill rows of 3 merchants (${(bytes / 1e6).toFixed(1)} MB uncompressed), ${(ROWS >> 1).toLocaleString('en')} local orders; set up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const { addTerminal } = await import('../shared/relay/index');
  const token = await addTerminal(dbPath, 'bench-manager', 'manager');
  const wx = await wechatPay(merchants);
  const relay = spawn(process.execPath, ['--import', 'tsx', self, '--relay-child'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: {
      ...process.env, WECHATPAY_CREDENTIALS_DIR: creds, WECHATPAY_BASE_URL: `http://127.0.0.1:${(wx.address() as AddressInfo).port}`, RELAY_PUBLIC_URL: 'http://127.0.0.1:9',
      RELAY_PORT: '0', RELAY_DB: dbPath, RELAY_LOG_LEVEL: 'warn', RELAY_QUERY_AFTER_SECONDS: '86400',
    },
  });
  const listening = JSON.parse(await line(relay)) as { url: string; maxRssKb: number };
  const url = listening.url;
  // /healthz every 25 ms while the run goes: how long the event loop is held.
  const lat: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const s = performance.now();
      await fetch(`${url}/healthz`).then((r) => r.arrayBuffer());
      lat.push(performance.now() - s);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  // Phases from the relay's own bill.progress pushes.
  const ws = new WebSocket(url.replace('http', 'ws') + '/v1/events', { headers: { Authorization: `Bearer ${token}` } });
  await once(ws, 'open');
  const stages: [string, number][] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as { type: string; stage?: string; mchid?: string };
    if (m.type === 'bill.progress') stages.push([`${m.stage}${m.mchid ? ' ' + m.mchid : ''}`, performance.now()]);
  });
  const r0 = performance.now();
  const res = await fetch(`${url}/v1/bills/trade`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ bill_date: BILL_DATE }) });
  const report = (await res.json()) as ReconciliationReport;
  const runS = (performance.now() - r0) / 1000;
  polling = false;
  await poller;
  ws.close();
  const fetchEnd = stages.find(([n]) => n === 'compare')?.[1] ?? r0;
  const rssLine = line(relay);
  relay.stdin!.write('stop\n');
  const { maxRssKb, peak } = JSON.parse(await rssLine) as { maxRssKb: number; peak: Record<string, number> };
  wx.close();
  if (res.status !== 200) throw new Error(`bill run answered ${res.status}: ${JSON.stringify(report)}`);
  const kinds = report.mismatches.map((m) => m.kind).sort().join(', ');
  const expected = PLANTED.amount.filter((i) => i < ROWS).length + PLANTED.missing.filter((i) => i < ROWS).length + PLANTED.unknown;
  console.log(`  report: ${report.merchants.map((m) => `${m.mchid} ${m.status} bill ${m.bill_count} / local ${m.local_count}`).join('; ')}`);
  console.log(`  mismatches found ${report.mismatch_count} (planted ${expected}: ${report.mismatch_count === expected ? 'all found' : 'DIFFERENT'}): ${kinds}; ok=${report.ok}`);
  console.log(`  run: ${runS.toFixed(2)} s (${(billRows / runS / 1e3).toFixed(0)}k bill rows/s; apply+download+parse+stage ${((fetchEnd - r0) / 1000).toFixed(1)} s, compare ${((r0 + runS * 1000 - fetchEnd) / 1000).toFixed(1)} s)   /healthz during the run: p50 ${q(lat, 0.5).toFixed(1)} ms, p99 ${q(lat, 0.99).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms (${lat.length} probes)`);
  console.log(`  peak RSS of the relay process ${(maxRssKb / 1024).toFixed(1)} MB (target < 200 MB: ${maxRssKb / 1024 < 200 ? 'met' : 'MISSED'}; ${(listening.maxRssKb / 1024).toFixed(1)} MB when it started listening)`);
  const mb = (n: number) => (n / 1048576).toFixed(0);
  console.log(`    at the sampled peak: RSS ${mb(peak.rss!)} MB = V8 heap ${mb(peak.heapTotal!)} MB (${mb(peak.heapUsed!)} used) + buffers ${mb(peak.arrayBuffers!)} MB + native rest (SQLite page caches, zlib, code)`);

  // Parse throughput against the native ceiling, on the same files, interleaved (the machine is
  // shared: the best of three of each).
  const pairs = merchants.map((m) => [m.file, m.sha1] as [string, string]);
  const ceil: number[] = [];
  const ours: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c0 = performance.now();
    for (const m of merchants) {
      const r = spawnSync('sh', ['-c', `gunzip -c '${m.file}' | sha1sum`], { encoding: 'utf8' });
      if (r.status !== 0 || !r.stdout.startsWith(m.sha1)) throw new Error('gunzip | sha1sum disagrees with the generated hash');
    }
    ceil.push((performance.now() - c0) / 1000);
    const p = await runParseChild(pairs);
    if (p.rows !== billRows) throw new Error(`parsed ${p.rows} rows, expected ${billRows}`);
    ours.push(p.ms / 1000);
  }
  const ceilS = Math.min(...ceil);
  const oursS = Math.min(...ours);
  const ratio = ceilS / oursS;
  console.log(`  gunzip -c | sha1sum (ceiling)  ${(bytes / 1e6 / ceilS).toFixed(1).padStart(7)} MB/s   ${ceilS.toFixed(2)} s`);
  console.log(`  ours: gunzip+SHA1+parse        ${(bytes / 1e6 / oursS).toFixed(1).padStart(7)} MB/s   ${oursS.toFixed(2)} s   ${(billRows / oursS / 1e3).toFixed(0)}k rows/s   ${ratio.toFixed(2)}× ceiling (target >= 0.5: ${ratio >= 0.5 ? 'met' : 'MISSED'})`);
  console.log(`\nbill reconciliation bench done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
} finally {
  if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
