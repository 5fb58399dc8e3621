/**
 * A network "printer" for tests: a TCP server on 127.0.0.1:0 that captures every job (one
 * connection = one job) and a decoder for the ESC/POS bytes we send: text decoded as GB18030,
 * QR payloads from `GS ( k` (store + print), raster images from `GS v 0` (decoded back to their QR
 * payload with jsQR), cut detection, and DLE EOT status requests (answered like a real printer).
 */
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import iconv from 'iconv-lite';
import jsQR from 'jsqr';

export interface DecodedRaster {
  widthDots: number;
  heightDots: number;
  /** QR payload decoded from the image, or null when it is not a readable QR. */
  qr: string | null;
}

export interface DecodedJob {
  text: string;
  lines: string[];
  /** Payloads printed with the native QR command (stored, then printed). */
  qr: string[];
  qrSettings: { model?: number; moduleSize?: number; ecLevel?: string };
  rasters: DecodedRaster[];
  cut: boolean;
  init: boolean;
  chineseMode: boolean;
  statusRequests: number;
  /** Bytes that were not a known command nor text (should stay 0). */
  unknownCommands: string[];
}

const EC = { 0x30: 'L', 0x31: 'M', 0x32: 'Q', 0x33: 'H' } as Record<number, string>;

function decodeRaster(data: Buffer, widthBytes: number, height: number): string | null {
  // Scale up is unnecessary; add a white margin so jsQR finds the finder patterns.
  const w = widthBytes * 8;
  const rgba = new Uint8ClampedArray(w * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < w; x++) {
      const black = (data[y * widthBytes + (x >> 3)]! & (0x80 >> (x & 7))) !== 0;
      const o = (y * w + x) * 4;
      const v = black ? 0 : 255;
      rgba[o] = v; rgba[o + 1] = v; rgba[o + 2] = v; rgba[o + 3] = 255;
    }
  }
  return jsQR(rgba, w, height)?.data ?? null;
}

export function decodeEscPos(bytes: Buffer): DecodedJob {
  const out: DecodedJob = {
    text: '', lines: [], qr: [], qrSettings: {}, rasters: [], cut: false, init: false, chineseMode: false, statusRequests: 0, unknownCommands: [],
  };
  const text: number[] = [];
  let pendingQr: string | null = null;
  let i = 0;
  const b = bytes;
  while (i < b.length) {
    const c = b[i]!;
    if (c === 0x1b) {
      const f = b[i + 1];
      if (f === 0x40) { out.init = true; i += 2; continue; }
      if (f === 0x61 || f === 0x45 || f === 0x21 || f === 0x64 || f === 0x4d || f === 0x74) { i += 3; continue; }
      out.unknownCommands.push(`ESC ${f?.toString(16)}`); i += 2; continue;
    }
    if (c === 0x1c) {
      const f = b[i + 1];
      if (f === 0x26) { out.chineseMode = true; i += 2; continue; }
      if (f === 0x2e) { out.chineseMode = false; i += 2; continue; }
      out.unknownCommands.push(`FS ${f?.toString(16)}`); i += 2; continue;
    }
    if (c === 0x10 && b[i + 1] === 0x04) { out.statusRequests++; i += 3; continue; }
    if (c === 0x1d) {
      const f = b[i + 1];
      if (f === 0x21) { i += 3; continue; }
      if (f === 0x56) {
        const m = b[i + 2]!;
        out.cut = true;
        i += m === 65 || m === 66 ? 4 : 3;
        continue;
      }
      if (f === 0x28 && b[i + 2] === 0x6b) {
        const len = b[i + 3]! + b[i + 4]! * 256;
        const params = b.subarray(i + 5, i + 5 + len);
        const fn = params[1];
        if (params[0] === 0x31) {
          if (fn === 0x41) out.qrSettings.model = params[2]! - 0x30;
          if (fn === 0x43) out.qrSettings.moduleSize = params[2];
          if (fn === 0x45) out.qrSettings.ecLevel = EC[params[2]!] ?? `?${params[2]}`;
          if (fn === 0x50) pendingQr = params.subarray(3).toString('utf8');
          if (fn === 0x51 && pendingQr !== null) { out.qr.push(pendingQr); pendingQr = null; }
        }
        i += 5 + len;
        continue;
      }
      if (f === 0x76 && b[i + 2] === 0x30) {
        const xBytes = b[i + 4]! + b[i + 5]! * 256;
        const y = b[i + 6]! + b[i + 7]! * 256;
        const data = b.subarray(i + 8, i + 8 + xBytes * y);
        out.rasters.push({ widthDots: xBytes * 8, heightDots: y, qr: decodeRaster(data, xBytes, y) });
        i += 8 + xBytes * y;
        continue;
      }
      out.unknownCommands.push(`GS ${f?.toString(16)}`); i += 2; continue;
    }
    text.push(c);
    i++;
  }
  out.text = iconv.decode(Buffer.from(text), 'gb18030');
  out.lines = out.text.split('\n').filter((l, k, all) => k < all.length - 1 || l !== '');
  return out;
}

export interface CapturedJob {
  bytes: Buffer;
  decoded: DecodedJob;
  at: number;
}

/**
 * `ack` answers status requests (a healthy printer); `mute` never answers (a hung one);
 * `offline` answers with the offline bit set (cover open / paper out).
 */
export type CaptureMode = 'ack' | 'mute' | 'offline';

export interface EscPosCapture {
  port: number;
  /** `tcp://127.0.0.1:PORT`, usable as the printer setting. */
  uri: string;
  jobs: CapturedJob[];
  setMode(mode: CaptureMode): void;
  /** Resolves with the n-th job (0-based) once it has arrived. */
  waitForJob(index: number, timeoutMs?: number): Promise<CapturedJob>;
  /** Connections accepted so far, and those still open now. */
  connections(): { total: number; open: number };
  /** Resolves once no connection is open (every sender closed its socket); rejects after timeoutMs. */
  waitForIdle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startEscPosCapture(opts: { mode?: CaptureMode; port?: number } = {}): Promise<EscPosCapture> {
  let mode: CaptureMode = opts.mode ?? 'ack';
  const jobs: CapturedJob[] = [];
  const waiters: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const idleWaiters: (() => void)[] = [];
  let total = 0;
  const server = createServer((sock) => {
    sockets.add(sock);
    total++;
    const chunks: Buffer[] = [];
    sock.on('data', (d) => {
      chunks.push(d);
      // DLE EOT 1 → one status byte: 0x16 = online, drawer closed (fixed bits 1,2,4 set).
      if (mode !== 'mute' && d.includes(Buffer.from([0x10, 0x04, 0x01]))) sock.write(Buffer.from([mode === 'offline' ? 0x1e : 0x16]));
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      sockets.delete(sock);
      if (sockets.size === 0) for (const w of idleWaiters.splice(0)) w();
      const bytes = Buffer.concat(chunks);
      if (!bytes.length) return;
      jobs.push({ bytes, decoded: decodeEscPos(bytes), at: Date.now() });
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((ok) => server.listen(opts.port ?? 0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    uri: `tcp://127.0.0.1:${port}`,
    jobs,
    setMode: (m) => { mode = m; },
    waitForJob: (index, timeoutMs = 10_000) => new Promise((ok, fail) => {
      const deadline = setTimeout(() => fail(new Error(`no print job #${index} within ${timeoutMs} ms (got ${jobs.length})`)), timeoutMs);
      const check = () => {
        if (jobs[index]) { clearTimeout(deadline); ok(jobs[index]!); } else waiters.push(check);
      };
      check();
    }),
    connections: () => ({ total, open: sockets.size }),
    waitForIdle: (timeoutMs = 5_000) => new Promise((ok, fail) => {
      if (sockets.size === 0) return ok();
      const deadline = setTimeout(() => fail(new Error(`${sockets.size} printer connection(s) still open after ${timeoutMs} ms`)), timeoutMs);
      idleWaiters.push(() => { clearTimeout(deadline); ok(); });
    }),
    close: () => new Promise<void>((ok) => {
      for (const s of sockets) s.destroy();
      server.close(() => ok());
    }),
  };
}

/**
 * A printer address that refuses connections, held for the test: the local port of one of our
 * own open client connections is bound but not listening, so connecting to it is refused and
 * nobody else can take the port meanwhile (never "a port that was free a moment ago").
 */
export async function refusingPrinter(): Promise<{ uri: string; release(): Promise<void> }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => { accepted.push(s); s.on('error', () => undefined); });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise<void>((ok, fail) => { client.once('connect', ok); client.once('error', fail); });
  return {
    uri: `tcp://127.0.0.1:${client.localPort}`,
    release: () => new Promise<void>((ok) => {
      client.destroy();
      for (const s of accepted) s.destroy();
      server.close(() => ok());
    }),
  };
}
