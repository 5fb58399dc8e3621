/**
 * The packaged counter app contains the terminal only: the esbuild metafile of the Electron
 * bundles lists every source file that went in; none may be the relay, the sandbox or the APIv3
 * client, and no native SQLite module may be required.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { buildElectron, FORBIDDEN_IN_ELECTRON } from '../../scripts/build-electron';

const out = mkdtempSync(join(tmpdir(), 'pos-electron-build-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it('bundles the terminal services but no relay, sandbox or APIv3 client', async () => {
  const { main, preload, customerPreload } = await buildElectron(out);
  // The customer display's preload carries the customer view only: not the cashier's method list.
  expect(Object.keys(customerPreload.inputs)).toContain('electron/customer-preload.ts');
  expect(readFileSync(join(out, 'customer-preload.cjs'), 'utf8')).not.toMatch(/createOrder|getSettings|retryPrint/);
  const inputs = Object.keys(main.inputs);
  // It did bundle the real thing (so an empty metafile cannot pass).
  expect(inputs).toContain('electron/main.ts');
  expect(inputs).toContain('shared/terminal/services.ts');
  expect(inputs).toContain('shared/terminal/printing/queue.ts');
  for (const meta of [main, preload, customerPreload]) {
    expect(Object.keys(meta.inputs).filter((p) => FORBIDDEN_IN_ELECTRON.some((f) => p.startsWith(f)))).toEqual([]);
    const required = Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
    expect(required.filter((p) => p !== 'electron' && !p.startsWith('node:') && !['bufferutil', 'utf-8-validate'].includes(p) && !/^[a-z_]+$/.test(p))).toEqual([]);
    expect(required).not.toContain('better-sqlite3');
  }
  const bundle = readFileSync(join(out, 'main.cjs'), 'utf8');
  expect(bundle).not.toMatch(/apiclient_key|WECHATPAY_CREDENTIALS_DIR|startRelay|startSandbox/);
}, 60_000);
