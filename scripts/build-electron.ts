/**
 * `npm run build:electron`: bundles the main process and the preload to dist/electron/*.cjs.
 * Electron and the native better-sqlite3 stay external (the latter is rebuilt for Electron by
 * electron-builder when packaging).
 */
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const common = {
  bundle: true,
  platform: 'node' as const,
  format: 'cjs' as const,
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning' as const,
  // embedded.ts reads import.meta.url only lazily, when no renderer folder is given; main.ts gives one.
  logOverride: { 'empty-import-meta': 'silent' as const },
  // ws' optional native helpers are absent on purpose.
  external: ['electron', 'better-sqlite3', 'bufferutil', 'utf-8-validate'],
};

await build({ ...common, entryPoints: [join(root, 'electron/main.ts')], outfile: join(root, 'dist/electron/main.cjs') });
// The preload runs sandboxed: only `electron` may be required; everything else is inlined.
await build({ ...common, external: ['electron'], entryPoints: [join(root, 'electron/preload.ts')], outfile: join(root, 'dist/electron/preload.cjs') });
console.log('built dist/electron/main.cjs and dist/electron/preload.cjs');
