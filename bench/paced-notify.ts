/**
 * Signed notifications posted to a relay at a steady rate, as the push-latency parts of the relay
 * benchmarks send them: the first second at that rate warms the processes up and is not measured;
 * `sent` is called for every measured notification as it goes out, `answered` when its answer ends.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface PacedNote { no: string; headers: Record<string, string>; body: string }

export interface Paced {
  /** Notifications per second actually sent during the measured part. */
  rate: number;
  /** How many were measured (sent after the warm-up). */
  measured: number;
}

export async function pacedNotify(url: string, notes: PacedNote[], rate: number, seconds: number, on: {
  sent?: (no: string, at: number) => void;
  answered?: (no: string, at: number) => void;
} = {}): Promise<Paced> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const post = (n: PacedNote) => new Promise<void>((resolve) => {
    const req = request(url + '/wechatpay/notify', { method: 'POST', agent, headers: { ...n.headers, 'content-length': Buffer.byteLength(n.body) } }, (res) => {
      res.resume();
      res.on('end', () => {
        on.answered?.(n.no, performance.now());
        resolve();
      });
    });
    req.on('error', () => resolve());
    req.end(n.body);
  });
  const warm = rate;
  const total = Math.min(notes.length, rate * seconds + warm);
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (i >= warm) on.sent?.(notes[i]!.no, performance.now());
    pending.push(post(notes[i]!));
  }
  const measuredRate = (total - warm) / ((performance.now() - start) / 1000 - 1);
  await Promise.all(pending);
  agent.destroy();
  return { rate: measuredRate, measured: total - warm };
}
