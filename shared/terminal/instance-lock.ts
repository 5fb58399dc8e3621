/**
 * One running copy per data folder: a second start would open the same relay database and
 * print-job file (two change cursors, two reconcilers, receipts printed twice). The lock is a
 * file created with O_EXCL holding the owner's pid; a lock whose pid no longer runs (a crash,
 * `kill -9`) is taken over. Released on close and, as a last resort, when the process exits.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { TerminalError } from './errors';

export const LOCK_FILE = 'pos.lock';

export class AlreadyRunningError extends TerminalError {
  constructor(readonly lockPath: string, readonly pid: number) {
    super('ALREADY_RUNNING', `another copy of the cashier app (pid ${pid}) is using this data folder (${lockPath}); `
      + 'switch to its window, or stop it first. If no such process runs, delete the lock file.');
    this.name = 'AlreadyRunningError';
  }
}

export interface InstanceLock {
  path: string;
  release(): void;
}

/** Whether `pid` is a running process (EPERM: it runs, under another user). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Locks held by this process (a file with our pid not listed here is a previous run's: pids repeat in containers). */
const heldHere = new Set<string>();

/** Takes the lock of `dir` (which must exist) or throws AlreadyRunningError. */
export function acquireInstanceLock(dir: string): InstanceLock {
  const path = resolve(dir, LOCK_FILE);
  if (heldHere.has(path)) throw new AlreadyRunningError(path, process.pid);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      let pid = NaN;
      try {
        pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      } catch {
        // vanished meanwhile (its owner released it): try again
      }
      // An empty file may be a lock being written this instant: only a dead pid is taken over.
      if (pid !== process.pid && pidAlive(pid)) throw new AlreadyRunningError(path, pid);
      if (Number.isNaN(pid) && attempt === 0) continue;
      try {
        unlinkSync(path); // stale: its owner is gone
      } catch {
        // someone else removed it first
      }
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    let held = true;
    heldHere.add(path);
    const release = () => {
      if (!held) return;
      held = false;
      heldHere.delete(path);
      process.off('exit', release);
      try {
        // Only our own lock: never remove one a later owner took over.
        if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) unlinkSync(path);
      } catch {
        // already gone
      }
    };
    process.on('exit', release);
    return { path, release };
  }
}
