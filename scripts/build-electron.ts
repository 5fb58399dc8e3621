/**
 * `npm run build:electron`: bundles the main process and the preload to dist/electron/*.cjs.
 * The counter app contains the terminal only: the bundle must not contain the relay (the holder
 * of the merchant key), the sandbox or the APIv3 client — `npm start` runs those in its own Node
 * process. test/terminal/electron-bundle.test.ts checks the bundle's inputs (esbuild metafile).
 */
import { build, type Metafile } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Source folders that must never end up in the Electron bundles. */
export const FORBIDDEN_IN_ELECTRON = ['shared/relay/', 'shared/sandbox/', 'shared/wechatpay/'];

export interface ElectronBuild {
  main: Metafile;
  preload: Metafile;
  /** The customer display's preload (customer view only). */
  customerPreload: Metafile;
}

export async function buildElectron(outDir = join(root, 'dist/electron')): Promise<ElectronBuild> {
  const common = {
    absWorkingDir: root,
    bundle: true,
    platform: 'node' as const,
    format: 'cjs' as const,
    target: 'node20',
    sourcemap: true,
    metafile: true,
    logLevel: 'warning' as const,
    // ws' optional native helpers are absent on purpose.
    external: ['electron', 'bufferutil', 'utf-8-validate'],
  };
  const main = await build({ ...common, entryPoints: [join(root, 'electron/main.ts')], outfile: join(outDir, 'main.cjs') });
  // The preload runs sandboxed: only `electron` may be required; everything else is inlined.
  const preload = await build({ ...common, external: ['electron'], entryPoints: [join(root, 'electron/preload.ts')], outfile: join(outDir, 'preload.cjs') });
  const customerPreload = await build({ ...common, external: ['electron'], entryPoints: [join(root, 'electron/customer-preload.ts')], outfile: join(outDir, 'customer-preload.cjs') });
  const metas = { main: main.metafile!, preload: preload.metafile!, customerPreload: customerPreload.metafile! };
  for (const [name, meta] of Object.entries(metas)) {
    const bad = Object.keys(meta.inputs).filter((p) => FORBIDDEN_IN_ELECTRON.some((f) => p.startsWith(f)));
    if (bad.length) throw new Error(`the Electron ${name} bundle must contain the terminal only, but includes: ${bad.join(', ')}`);
  }
  return metas;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildElectron();
  console.log('built dist/electron/main.cjs, preload.cjs and customer-preload.cjs');
}
