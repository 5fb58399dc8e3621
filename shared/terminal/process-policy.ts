/**
 * What a process we start (`npm start`, the Electron main process) does with errors nobody
 * caught. On the embedded default one process also hosts the relay and the sandbox, so:
 * - an unhandled promise rejection is a bug, logged loudly with its stack; the process keeps
 *   serving (every money change is already in SQLite, one transaction each);
 * - an uncaught exception leaves the process in an unknown state: it is logged, everything is
 *   shut down cleanly (servers closed, database closed, lock released) and the process exits
 *   non-zero, so nothing keeps taking payments in that state.
 */
export interface ProcessPolicyOptions {
  /** Prefix of the log lines, e.g. `start` or `electron`. */
  name: string;
  /** Clean shutdown before exiting after an uncaught exception. */
  shutdown: () => Promise<void>;
  /** How the process ends (default process.exit; Electron: app.exit). */
  exit?: (code: number) => void;
  log?: (line: string) => void;
  /** Longest wait for the shutdown before exiting anyway (default 10 s). */
  shutdownTimeoutMs?: number;
}

const describe = (err: unknown): string => (err instanceof Error ? err.stack ?? `${err.name}: ${err.message}` : String(err));

/** Installs the two handlers; returns a function removing them (tests). */
export function installProcessPolicy(opts: ProcessPolicyOptions): () => void {
  const log = opts.log ?? ((line: string) => console.error(line));
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let fatal = false;

  const onRejection = (reason: unknown): void => {
    log(`[${opts.name}] UNHANDLED PROMISE REJECTION (a bug; please report it). The app keeps running:\n${describe(reason)}`);
  };
  const onException = (err: unknown): void => {
    if (fatal) {
      // A second one during the shutdown: stop now.
      log(`[${opts.name}] another uncaught exception while shutting down: exiting now\n${describe(err)}`);
      return exit(1);
    }
    fatal = true;
    log(`[${opts.name}] FATAL: uncaught exception; shutting down cleanly, then exiting with code 1:\n${describe(err)}`);
    const timer = setTimeout(() => {
      log(`[${opts.name}] shutdown did not finish in time: exiting`);
      exit(1);
    }, opts.shutdownTimeoutMs ?? 10_000);
    timer.unref?.();
    opts.shutdown().catch((e: unknown) => log(`[${opts.name}] shutdown failed: ${describe(e)}`)).finally(() => {
      clearTimeout(timer);
      exit(1);
    });
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
