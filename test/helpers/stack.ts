/**
 * The whole product on loopback for tests: sandbox + relay + terminal services + web host, all
 * on port 0, wired exactly as `npm start` does (shared/terminal/embedded.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbedded, type EmbeddedOptions } from '../../shared/terminal/embedded';
import type { TerminalServices } from '../../shared/terminal/services';

export interface StackOptions {
  /** Data folder (reused if it exists); default a fresh temp folder removed on close. */
  dir?: string;
  /** `preview` (default) or `tcp://127.0.0.1:PORT` (e.g. an escpos-capture server). */
  printer?: 'preview' | `tcp://127.0.0.1:${number}` | string;
  closeMinAgeSeconds?: number;
  timeScale?: number;
  queryAfterSeconds?: number;
  rendererDir?: string;
  services?: EmbeddedOptions['services'];
}

export interface Stack {
  dir: string;
  sandboxUrl: string;
  relayUrl: string;
  /**
   * A fresh single-use start link `http://127.0.0.1:PORT/?code=…` each time it is read (the web
   * host refuses a code the second time): opening it gives that browser its session cookie.
   */
  readonly webUrl: string;
  /** A fresh single-use link to the customer display page (its session reaches the customer feed only). */
  readonly customerUrl: string;
  webOrigin: string;
  /** The web host's Bearer secret, for API calls from the test itself. */
  secret: string;
  cashierToken: string;
  managerToken: string;
  services: TerminalServices;
  close(): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const temp = !opts.dir;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'pos-stack-'));
  const e = await startEmbedded({
    dataDir: dir,
    printer: opts.printer ?? 'preview',
    closeMinAgeSeconds: opts.closeMinAgeSeconds,
    timeScale: opts.timeScale,
    queryAfterSeconds: opts.queryAfterSeconds,
    rendererDir: opts.rendererDir,
    relayLogLevel: 'silent',
    services: opts.services,
  });
  const webHost = e.webHost!;
  return {
    dir,
    sandboxUrl: e.sandboxUrl,
    relayUrl: e.relayUrl,
    get webUrl() {
      return webHost.launchUrl();
    },
    get customerUrl() {
      return webHost.customerLaunchUrl();
    },
    webOrigin: e.webHost!.origin,
    secret: e.webHost!.secret,
    cashierToken: e.cashierToken,
    managerToken: e.managerToken,
    services: e.services,
    close: async () => {
      await e.close();
      if (temp) rmSync(dir, { recursive: true, force: true });
    },
  };
}
