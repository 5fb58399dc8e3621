/**
 * WAL checkpoints off the event loop. A checkpoint copies WAL pages into the database and
 * fsyncs; done by SQLite's auto-checkpoint it runs inside whichever commit crossed the
 * threshold, on the main thread, stalling every request behind it. Here a worker thread with
 * its own connection runs PASSIVE checkpoints (they never block writers) twice a second; the
 * main connection keeps a large auto-checkpoint only as a backstop. Durability does not depend
 * on checkpoints (a committed transaction is in the WAL).
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err && err.message) }); }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') { clearInterval(timer); db.close(); parentPort.close(); }
});
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(path: string, intervalMs = 500, onError?: (message: string) => void): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, intervalMs } });
  worker.on('message', (m: { error?: string }) => m.error && onError?.(m.error));
  worker.on('error', (err) => onError?.(err.message));
  worker.unref();
  let stopped: Promise<void> | null = null;
  return {
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        // Keep the process alive until the worker's connection is closed.
        worker.ref();
        worker.once('exit', () => resolve());
        worker.postMessage('stop');
        // A wedged worker must not hold up shutdown.
        setTimeout(() => void worker.terminate(), 2000).unref();
      });
      return stopped;
    },
  };
}
